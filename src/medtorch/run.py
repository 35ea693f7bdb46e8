"""A run folder as a Python object: its metrics, history, predictions, plots and report.

``Run`` reads the folder only (the files listed in ``docs/design.md``), so a run trained
from the CLI, from :func:`medtorch.train` or on another machine opens the same way.
"""

from __future__ import annotations

import csv
import json
import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medtorch.errors import ConfigError, MedtorchError, fmt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medtorch.config import RunConfig

PLOTS = ("learning_curves", "roc", "pr", "confusion_matrix", "reliability")
Status = Literal["finished", "interrupted", "failed"]


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _table(path: Path) -> Any:
    """A CSV as a pandas DataFrame when pandas is importable, else a dict of numpy arrays
    (numeric columns as floats)."""
    if _has_pandas():
        import pandas as pd

        return pd.read_csv(path)
    import numpy as np

    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, Any] = {k: [r[k] for r in rows] for k in (rows[0] if rows else {})}
    for k, v in cols.items():
        try:
            cols[k] = np.array([float(x) if x != "" else np.nan for x in v])
        except ValueError:
            cols[k] = np.array(v)
    return cols


class Run:
    """A run folder written by ``medtorch train`` / :func:`medtorch.train`.

    >>> run = open_run("runs/lab2_seizure_cnn-20250101-000000")  # doctest: +SKIP
    >>> run.status, run.metrics["test"]["overall"]["auroc"]["value"]  # doctest: +SKIP
    ('finished', 0.97...)
    >>> run.plot("learning_curves")  # a matplotlib Figure, shown inline in Jupyter  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, check: bool = True) -> None:
        self.path = Path(path)
        if check and not (self.path / "config.yaml").is_file():
            raise ConfigError(fmt("a run folder with config.yaml", str(self.path), "open_run",
                                  "pass a folder written by `medtorch train`"))  # fmt: skip

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r})"

    def _file(self, name: str) -> Path:
        path = self.path / name
        if not path.is_file():
            fix = (
                f"the run is {self.status}; continue it with `medtorch train --resume {self.path}`"
                if self.status == "interrupted"
                else "the run did not finish; train it again"
            )
            raise MedtorchError(fmt(f"{name} in the run folder", str(self.path), "Run", fix))
        return path

    def _json(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self._file(name).read_text()))

    @property
    def status(self) -> Status:
        """``finished`` (scored: metrics.json), ``interrupted`` (a checkpoint to resume from,
        no scores yet) or ``failed`` (nothing trained, or a file unreadable). The same
        reading of the folder as ``medtorch runs``
        (:func:`medtorch.runs.describe_run`)."""
        from medtorch.runs import describe_run

        word = str(describe_run(self.path)["status"]).split(" ")[0]
        if word == "finished":
            return "finished"
        return "interrupted" if word == "interrupted" else "failed"

    @cached_property
    def config(self) -> RunConfig:
        """The resolved recipe the run was trained with (its ``config.yaml``)."""
        import yaml

        from medtorch.config import load_config, migrate_moved_keys

        raw = yaml.safe_load(self._file("config.yaml").read_text())
        return load_config(migrate_moved_keys(raw))

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: ``valid`` and ``test`` scores with CIs, ``best_epoch``, ..."""
        return self._json("metrics.json")

    @property
    def cohort(self) -> dict[str, Any]:
        """``cohort.json``: rows read, rows dropped by reason, class counts."""
        return self._json("cohort.json")

    @property
    def splits(self) -> dict[str, Any]:
        """``splits.json``: the split by sample id and its leakage audit."""
        return self._json("splits.json")

    @property
    def history(self) -> Any:
        """``history.csv``, one row per epoch: a pandas DataFrame, or a dict of arrays when
        pandas is not installed."""
        return _table(self._file("history.csv"))

    @property
    def predictions(self) -> Any:
        """``predictions_test.csv`` (sample id, group, truth, prediction, probabilities):
        a DataFrame, or a dict of arrays without pandas."""
        return _table(self._file("predictions_test.csv"))

    @property
    def valid_predictions(self) -> Any:
        """``predictions_valid.csv``, the same columns for the validation part: choose
        thresholds or an ensemble on these, never on the test predictions."""
        return _table(self._file("predictions_valid.csv"))

    @property
    def report_path(self) -> Path:
        """The run's self-contained ``report.html``."""
        return self._file("report.html")

    def plot(self, name: str) -> Figure:
        """One of the report's plots as a matplotlib Figure (inline in Jupyter):
        ``learning_curves``, ``roc``, ``pr``, ``confusion_matrix`` or ``reliability``.

        >>> fig = run.plot("roc")  # doctest: +SKIP
        >>> fig.savefig("roc.pdf")  # doctest: +SKIP
        """
        from medtorch.report import plots

        if name not in PLOTS:
            raise ConfigError(fmt(f"a plot name ({', '.join(PLOTS)})", name, "Run.plot",
                                  "pick one of those"))  # fmt: skip
        if name == "learning_curves":
            metrics = self.metrics if (self.path / "metrics.json").is_file() else {}
            kept = metrics.get("best_epoch")
            return plots.learning_curves_figure(
                self._file("history.csv"), self.config.trainer.monitor,
                kept if isinstance(kept, int) else None,
            )  # fmt: skip
        if name == "confusion_matrix":
            test = self.metrics["test"]
            return plots.confusion_figure(test["confusion_matrix"], test["class_names"])
        y, proba, names = self._test_predictions()
        if name == "reliability":
            return plots.reliability_figure(y, proba)
        roc, pr = plots.roc_pr_figures(y, proba, names)
        return roc if name == "roc" else pr

    def _test_predictions(self) -> tuple[Any, Any, list[str]]:
        from medtorch.report.html import _predictions

        with self._file("predictions_test.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        names = self.metrics.get("test", {}).get("class_names")
        return _predictions(rows, names)

    def show_report(self) -> Path | None:
        """Show ``report.html`` inline when running in Jupyter (in a frame, so its styles
        stay inside it) and return None; elsewhere return its path."""
        from medtorch.notebook import in_notebook

        path = self.report_path
        if not in_notebook():
            return path
        import html

        from IPython.display import HTML, display

        page = html.escape(path.read_text(encoding="utf-8"), quote=True)
        display(HTML(f'<iframe srcdoc="{page}" style="width:100%;height:720px;border:0"></iframe>'))
        return None

    def predict(self, inputs: str | Path, out: str | Path | None = None, **options: Any) -> Any:
        """Predict a new input file with the run's best checkpoint, read by the run's task
        as ``medtorch predict`` reads it (a CSV of signals, an svmlight file, an image or a
        folder of images, a WFDB record path...). Returns the predictions as a DataFrame (a
        dict of arrays without pandas); ``out`` also keeps the CSV. ``options`` are the
        task's own predict options (``lead="II"``, ``af_run=...``).

        >>> run.predict("signals.csv").head()  # doctest: +SKIP
        """
        from medtorch.predict import predict_to_csv

        if out is not None:
            predict_to_csv(self.path, Path(inputs), Path(out), **options)
            return _table(Path(out))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "predictions.csv"
            predict_to_csv(self.path, Path(inputs), path, **options)
            return _table(path)


def open_run(path: str | Path) -> Run:
    """Open a run folder (finished, interrupted or failed: see :attr:`Run.status`).

    >>> open_run("no/such/run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medtorch.errors.ConfigError: expected a run folder with config.yaml, got 'no/such/run' in open_run; ...
    """
    return Run(path)

"""The Python API: every public name imports, its cheap doctests pass, a run trained
through it is the CLI's run folder, and bad input raises the CLI's one-line errors."""

from __future__ import annotations

import csv
import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest

import medtorch as mt
from medtorch.cli import main
from medtorch.errors import ConfigError, MedtorchError

# the API's modules whose doctests are cheap (no training; the bundled UCI file at most)
DOCTEST_MODULES = [
    "medtorch",
    "medtorch.api",
    "medtorch.run",
    "medtorch.notebook",
    "medtorch.recipes",
    "medtorch.datasets",
    "medtorch.splits",
    "medtorch.models",
    "medtorch.data.dataset",
    "medtorch.metrics.classification",
]


def _uci_csv(path: Path, n: int = 200, seed: int = 0) -> Path:
    """A small file in the UCI seizure layout: ``n`` rows of 178 samples, 5 classes whose
    mean differs, so one epoch learns something; ids name 40 recordings."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", *[f"X{i}" for i in range(1, 179)], "y"])
        for r in range(n):
            y = 1 + r % 5
            x = rng.normal(40.0 * y, 30.0, 178).round(1)
            w.writerow([f"X{1 + r // 40}.V1.{r % 40}", *x.tolist(), y])
    return path


def _cli_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    return line[len("error: ") :]


@pytest.mark.parametrize("name", mt.__all__)
def test_every_public_name_imports(name: str) -> None:
    obj = getattr(mt, name)
    assert obj is not None
    if name != "__version__":
        assert (obj.__doc__ or "").strip(), f"medtorch.{name} has no docstring"
    assert name in dir(mt)


def test_all_lists_exactly_the_lazy_names() -> None:
    assert set(mt.__all__) == {"__version__", *mt._LAZY}


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        mt.trian  # noqa: B018


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0, f"{module} has no doctest"


def test_public_functions_have_examples_and_hints() -> None:
    import inspect

    fns = [mt.load_recipe, mt.api.train, mt.open_run, mt.datasets.load, mt.models.create,
           mt.models.list, mt.splits.make, mt.metrics.evaluate]  # fmt: skip
    for fn in fns:
        assert ">>>" in (fn.__doc__ or ""), fn.__qualname__
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, fn.__qualname__


def test_load_recipe_overrides_in_three_spellings() -> None:
    a = mt.load_recipe(
        "lab2_seizure_cnn", overrides={"trainer.max_epochs": 3, "split.ratios": [0.6, 0.2, 0.2]}
    )
    b = mt.load_recipe(
        "lab2_seizure_cnn", overrides=["trainer.max_epochs=3", "split.ratios=[0.6, 0.2, 0.2]"]
    )
    c = mt.load_recipe("lab2_seizure_cnn", max_epochs=3, split__ratios=(0.6, 0.2, 0.2))
    assert a == b == c
    assert a.trainer.max_epochs == 3 and a.split.ratios == (0.6, 0.2, 0.2)
    # a RunConfig can be changed again; strings stay strings
    d = mt.load_recipe(a, name="x", description="1e-3")
    assert d.name == "x" and d.description == "1e-3" and d.trainer.max_epochs == 3


def test_load_recipe_ambiguous_keyword_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        mt.load_recipe("lab2_seizure_cnn", seed=1)
    msg = str(exc.value)
    assert "split.seed, trainer.seed, eval.seed" in msg and "trainer__seed" in msg
    with pytest.raises(ConfigError, match="did you mean max_epochs"):
        mt.load_recipe("lab2_seizure_cnn", max_epoch=1)


@pytest.mark.parametrize(
    ("overrides", "argv"),
    [
        ({"trainer.max_epoch": 3}, ["--set", "trainer.max_epoch=3"]),
        ({"trainer.batch_size": 0}, ["--set", "trainer.batch_size=0"]),
        ({"split.method": "by_recordin"}, ["--set", "split.method=by_recordin"]),
        (["trainer.max_epochs"], ["--set", "trainer.max_epochs"]),
    ],
)
def test_bad_recipe_settings_raise_the_cli_message(capsys, overrides, argv) -> None:
    with pytest.raises(ConfigError) as exc:
        mt.load_recipe("lab2_seizure_cnn", overrides=overrides)
    assert str(exc.value) == _cli_error(capsys, "train", "lab2_seizure_cnn", *argv)


def test_unknown_recipe_and_bad_resume_raise_the_cli_message(capsys, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        mt.train("lab2_seizure_cnnn", out=tmp_path)
    assert str(exc.value) == _cli_error(
        capsys, "train", "lab2_seizure_cnnn", "--out", str(tmp_path)
    )
    with pytest.raises(MedtorchError) as exc:
        mt.train(resume=tmp_path)
    assert str(exc.value) == _cli_error(capsys, "train", "--resume", str(tmp_path))
    assert not list(tmp_path.iterdir())  # nothing was written


def test_unknown_task_and_model_raise_the_registries_messages(capsys) -> None:
    with pytest.raises(ConfigError) as exc:
        mt.datasets.load("seizure_5clas")
    assert "did you mean seizure_5class" in str(exc.value)
    cli = _cli_error(capsys, "train", "lab2_seizure_cnn", "--set", "task.name=seizure_5clas")
    assert cli.startswith(str(exc.value))
    with pytest.raises(MedtorchError, match=r"in model\.name; did you mean lab_cnn"):
        mt.models.create("lab_cnx", n_inputs=1, n_classes=2)
    with pytest.raises(MedtorchError, match=r"n_inputs and n_classes \(or dataset=\)"):
        mt.models.create("lab_cnn")


def test_building_blocks_make_a_loop_of_ones_own(tmp_path: Path) -> None:
    import torch

    ds = mt.datasets.load("seizure_5class", path=str(_uci_csv(tmp_path / "uci.csv")))
    assert len(ds) == 200 and ds.n_classes == 5
    split, audit = mt.splits.make(ds, method="by_recording", seed=0)
    assert audit["leakage_audit"] == "passed"
    assert not set(ds.groups[split["train"]]) & set(ds.groups[split["test"]])
    assert sum(len(v) for v in split.values()) == len(ds)
    train = ds.subset(split["train"]).as_torch()
    x, y = train.tensors
    assert x.shape == (len(split["train"]), 1, 178) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    net = mt.models.create("lab_cnn", dataset=ds)
    torch.manual_seed(0)
    with torch.no_grad():
        proba = torch.softmax(net((x - x.mean()) / x.std()).double(), 1).numpy()
    report = mt.metrics.evaluate(y.numpy(), proba, n_bootstrap=20)
    assert report["class_names"] == ["0", "1", "2", "3", "4"] and report["n"] == len(y)
    assert 0.0 <= report["overall"]["accuracy"]["value"] <= 1.0


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> mt.Run:
    tmp = tmp_path_factory.mktemp("api")
    recipe = mt.load_recipe(
        "lab2_seizure_cnn",
        overrides={"task.params.path": str(_uci_csv(tmp / "uci.csv")), "eval.n_bootstrap": 20},
        max_epochs=2, batch_size=32, progress=False,
    )  # fmt: skip
    return mt.train(recipe, out=tmp / "runs")


def test_train_writes_the_cli_run_folder(api_run: mt.Run) -> None:
    assert api_run.status == "finished"
    for f in ("config.yaml", "cohort.json", "splits.json", "normalizer.json", "model.json",
              "history.csv", "checkpoints/best.pt", "checkpoints/last.pt", "metrics.json",
              "predictions_valid.csv", "predictions_test.csv", "report.html"):  # fmt: skip
        assert (api_run.path / f).is_file(), f
    assert api_run.report_path == api_run.path / "report.html"
    assert api_run.config.trainer.max_epochs == 2
    assert api_run.cohort["rows_read"] == 200
    assert api_run.splits["partitions"]["test"]["n"] == api_run.metrics["test"]["n"]


def test_run_attributes(api_run: mt.Run) -> None:
    import pandas as pd

    h = api_run.history
    assert isinstance(h, pd.DataFrame) and h["epoch"].tolist() == [1, 2]
    p = api_run.predictions
    assert len(p) == api_run.metrics["test"]["n"]
    assert np.allclose(p.filter(like="p_").sum(axis=1), 1, atol=1e-4)
    v = api_run.valid_predictions
    assert len(v) == api_run.metrics["valid"]["n"] and list(v.columns) == list(p.columns)
    assert not set(v["sample_id"]) & set(p["sample_id"])  # the two parts share no sample
    reopened = mt.open_run(str(api_run.path))
    assert reopened.metrics == api_run.metrics and "finished" in repr(reopened)
    assert reopened.show_report() == api_run.report_path  # not in a notebook: the path


@pytest.mark.parametrize(
    "name", ["learning_curves", "roc", "pr", "confusion_matrix", "reliability"]
)
def test_run_plot_returns_a_figure_that_renders(api_run: mt.Run, name: str) -> None:
    from matplotlib.figure import Figure

    fig = api_run.plot(name)
    assert isinstance(fig, Figure) and fig.axes
    assert fig._repr_png_().startswith(b"\x89PNG")  # what Jupyter shows inline


def test_run_plot_unknown_name(api_run: mt.Run) -> None:
    with pytest.raises(ConfigError, match="expected a plot name"):
        api_run.plot("roc_curve")


def test_run_predict_matches_the_cli(api_run: mt.Run, tmp_path: Path, capsys) -> None:
    src = _uci_csv(tmp_path / "new.csv", n=15, seed=1)
    df = api_run.predict(src)
    assert len(df) == 15 and "predicted" in df.columns
    assert main(["predict", str(api_run.path), str(src), "--out", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    with (tmp_path / "p.csv").open(newline="") as f:
        cli = list(csv.DictReader(f))
    assert [r["predicted"] for r in cli] == df["predicted"].tolist()
    kept = api_run.predict(src, out=tmp_path / "q.csv")
    assert (tmp_path / "q.csv").is_file() and len(kept) == 15


def test_history_without_pandas(api_run: mt.Run, monkeypatch) -> None:
    import medtorch.run as run_mod

    monkeypatch.setattr(run_mod, "_has_pandas", lambda: False)
    h = api_run.history
    assert isinstance(h, dict) and h["epoch"].tolist() == [1.0, 2.0]


def test_run_status_of_unfinished_folders(api_run: mt.Run, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(api_run.path, folder)
    (folder / "metrics.json").unlink()  # stopped after its epochs, before scoring
    run = mt.open_run(folder)
    assert run.status == "interrupted"
    with pytest.raises(MedtorchError, match="--resume"):
        run.metrics  # noqa: B018
    shutil.rmtree(folder / "checkpoints")  # stopped before its first epoch ended
    assert run.status == "failed"


def test_progress_decision(monkeypatch) -> None:
    import sys
    import types

    from medtorch import notebook

    assert notebook.show_progress(True) and not notebook.show_progress(False)
    monkeypatch.setattr(notebook, "on_terminal", lambda: False)
    assert not notebook.show_progress("auto")  # a log file: no bar

    class ZMQInteractiveShell:  # what a Jupyter kernel's get_ipython() returns
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert notebook.in_notebook() and notebook.show_progress("auto")

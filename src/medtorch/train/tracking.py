"""Optional experiment tracking (``trainer.loggers: [tensorboard, mlflow]``), all offline.

- ``tensorboard``: event files in ``<run>/tensorboard`` (``tensorboard --logdir runs``): every
  history column per epoch, the resolved config as text, the final valid / test metrics.
- ``mlflow``: MLflow's local file store in ``<out>/mlruns`` beside the run folders (one
  experiment per recipe name, one MLflow run per run folder, resumed with it; browse with
  ``mlflow ui --backend-store-uri <out>/mlruns``): the config as parameters, the history as
  metrics per epoch, the final metrics.

Tracking only mirrors what the run folder already holds; the run folder stays the record.
Both need their package (``pip install medtorch[tracking]``); a missing one is one line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medtorch.errors import ConfigError

KNOWN = ("tensorboard", "mlflow")


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (MLflow parameters are flat)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}  # fmt: skip


def final_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """``valid/<metric>`` and ``test/<metric>`` point values of a metrics.json."""
    out = {}
    for part in ("valid", "test"):
        for name, entry in ((metrics.get(part) or {}).get("overall") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)):
                out[f"{part}/{name}"] = float(entry["value"])
    return out


class Trackers:
    """The loggers a run asked for; each call is a no-op without any."""

    def __init__(
        self, names: Sequence[str], run_dir: Path, name: str, config: dict[str, Any]
    ) -> None:
        self.run_dir, self.tb, self.mlflow = Path(run_dir), None, None
        self.mlflow_run = ""
        if "tensorboard" in names:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise _missing("tensorboard") from None
            self.tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
            self.tb.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")
        if "mlflow" in names:
            try:
                import mlflow
            except ImportError:
                raise _missing("mlflow") from None
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local, offline store
            self.mlflow = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
            ids = self.run_dir / "tracking.json"
            saved = (
                str(json.loads(ids.read_text()).get("mlflow_run_id", "")) if ids.is_file() else ""
            )
            if not saved:
                exp = self.mlflow.get_experiment_by_name(name)
                exp_id = exp.experiment_id if exp else self.mlflow.create_experiment(name)
                run = self.mlflow.create_run(exp_id, run_name=self.run_dir.name)
                saved = run.info.run_id
                ids.write_text(json.dumps({"mlflow_run_id": saved}))
                for key, value in _flat(config).items():
                    self.mlflow.log_param(saved, key, str(value)[:500])
            self.mlflow_run = saved

    @property
    def tracking_uri(self) -> str:
        return (self.run_dir.parent / "mlruns").resolve().as_uri()

    def log_epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        values = {k: v for k, v in _numbers(row).items() if k != "epoch"}
        self.log(values, epoch)
        if self.tb is not None:
            self.tb.flush()  # a killed run keeps what it logged

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if self.tb is not None:
                self.tb.add_scalar(key, value, step)
            if self.mlflow is not None:
                self.mlflow.log_metric(self.mlflow_run, key.replace("/", "_"), value, step=step)

    def close(self, finished: bool = False) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
        if self.mlflow is not None and finished:
            self.mlflow.set_terminated(self.mlflow_run, "FINISHED")


def open_for(
    names: Sequence[str], run_dir: Path | None, fallback: dict[str, Any]
) -> Trackers | None:
    """The trackers of a run folder (None without loggers or folder, e.g. on ranks > 0): the
    experiment is the recipe's name and the parameters its config.yaml, where present."""
    if not names or run_dir is None:
        return None
    import yaml

    cfg_file = Path(run_dir) / "config.yaml"
    config = (yaml.safe_load(cfg_file.read_text()) or {}) if cfg_file.is_file() else fallback
    return Trackers(names, Path(run_dir), str(config.get("name", "medtorch")), config)


def _missing(package: str) -> ConfigError:
    return ConfigError(
        f"expected the {package} package for trainer.loggers, got it not installed in "
        f"trainer.loggers; pip install 'medtorch[tracking]' or remove {package} from the list"
    )


def check_loggers(names: Sequence[str]) -> None:
    """Refuse a missing tracking package before anything trains."""
    for name in names:
        try:
            __import__("torch.utils.tensorboard" if name == "tensorboard" else "mlflow")
        except ImportError:
            raise _missing(name) from None


def log_final(names: Sequence[str], run_dir: Path, name: str, metrics: dict[str, Any]) -> None:
    """Log a finished run's valid / test metrics and mark its MLflow run finished."""
    if not names:
        return
    trackers = open_for(names, run_dir, {"name": name})
    assert trackers is not None
    trackers.log(final_numbers(metrics), step=int(metrics.get("best_epoch") or 0))
    trackers.close(finished=True)

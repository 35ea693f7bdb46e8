"""trainer.loggers: TensorBoard event files and MLflow's local file store, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError
from medtorch.train import Trainer, tracking

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


def _ds(n: int, seed: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return ArrayDataset({"x": x}, y, np.arange(n).astype(str), ["neg", "pos"])


def test_loggers_write_tensorboard_events_and_an_mlflow_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = tmp_path / "out" / "demo-1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: demo\ntrainer: {max_epochs: 3}\n")
    cfg = TrainerConfig(max_epochs=3, batch_size=32, progress=False, num_threads=1,
                        loggers=["tensorboard", "mlflow"])  # fmt: skip
    torch.manual_seed(0)
    tr = Trainer(nn.Linear(4, 2), OptimConfig(lr=0.05), cfg, run, ["neg", "pos"])
    hist = tr.fit(_ds(200, 0), _ds(100, 1))
    metrics = {"best_epoch": tr.best_epoch,
               "test": {"overall": {"accuracy": {"value": 0.9}, "auroc": {"value": None}}}}  # fmt: skip
    tracking.log_final(cfg.loggers, run, "demo", metrics)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = events.Scalars("valid_loss")
    assert [e.step for e in losses] == [1, 2, 3]
    assert [e.value for e in losses] == pytest.approx([r["valid_loss"] for r in hist], rel=1e-6)
    assert events.Scalars("test/accuracy")[0].value == pytest.approx(0.9)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "out" / "mlruns").as_uri())
    run_id = json.loads((run / "tracking.json").read_text())["mlflow_run_id"]
    got = client.get_run(run_id)
    assert got.info.run_name == "demo-1" and got.info.status == "FINISHED"
    assert got.data.params["name"] == "demo" and got.data.params["trainer.max_epochs"] == "3"
    assert got.data.metrics["test_accuracy"] == pytest.approx(0.9)
    history = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert client.get_experiment_by_name("demo") is not None


def test_a_missing_tracking_package_is_one_line(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(ConfigError, match=r"mlflow package for trainer\.loggers") as exc:
        tracking.check_loggers(["mlflow"])
    assert "\n" not in str(exc.value)

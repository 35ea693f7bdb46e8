"""trainer.ema (a moving average of the weights) and trainer.label_smoothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.errors import ConfigError
from medtorch.train import Trainer
from medtorch.train.checkpoint import load_checkpoint, run_weights
from medtorch.train.ema import WeightAverage
from medtorch.train.objective import Objective
from test_trainer import CLASSES, make_ds, new_model, same_state, strip, tcfg


@pytest.fixture(scope="module")
def data():
    return make_ds(400, seed=0), make_ds(200, seed=1)


def test_weight_average_follows_the_warmup_recurrence() -> None:
    """Update 0 copies; update k >= 1 is e = d e + (1 - d) w with d = min(decay, k / (k + 9)),
    for parameters and batch-norm statistics alike; the integer counter is copied."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay = 0.8
    ema = WeightAverage(net, decay)
    ref: dict[str, torch.Tensor] = {}
    for k in range(12):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
        net.train()(torch.randn(8, 3))  # moves the running statistics, counts a batch
        ema.update(net)
        d = min(decay, k / (k + 9))
        for name, v in net.state_dict().items():
            if k == 0 or not v.is_floating_point():
                ref[name] = v.clone()
            else:
                ref[name] = d * ref[name] + (1 - d) * v
    got = ema.module.state_dict()
    assert got.keys() == ref.keys() and ema.steps == 12
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6)
    assert int(got["1.num_batches_tracked"]) == 12
    # by k = 12 the warm-up (12 / 21 < 0.8) still governs: the average is no plain copy
    assert not torch.allclose(got["0.weight"], net.state_dict()["0.weight"])
    with pytest.raises(ValueError, match="EMA decay in"):
        WeightAverage(net, 1.0)


def test_trainer_validates_and_keeps_the_average(data, tmp_path: Path) -> None:
    train, valid = data
    opt = OptimConfig(lr=1e-2)
    plain = Trainer(new_model(), opt, tcfg(max_epochs=3), None, CLASSES)
    h_plain = plain.fit(train, valid)
    tr = Trainer(new_model(), opt, tcfg(max_epochs=3, ema=0.9), tmp_path, CLASSES)
    h = tr.fit(train, valid)
    # the average never feeds back: the trained weights are those of the plain run
    assert same_state(tr.model.state_dict(), plain.model.state_dict())
    assert not same_state(tr.eval_model.state_dict(), tr.model.state_dict())
    # the history's validation loss is the average's, not the trained weights'
    xv, yv = torch.from_numpy(valid.inputs["x"]), torch.from_numpy(valid.y)
    with torch.no_grad():
        avg_loss = F.cross_entropy(tr.eval_model.eval()(xv), yv).item()
    assert h[-1]["valid_loss"] == pytest.approx(avg_loss, rel=1e-5)
    assert h[-1]["valid_loss"] != pytest.approx(h_plain[-1]["valid_loss"], rel=1e-4)
    # the best checkpoint and "last" are the average's weights; last.pt keeps both
    best = run_weights(tmp_path / "checkpoints", "best")
    assert same_state(best, tr.best_state)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert same_state(last["model"], tr.model.state_dict())
    assert same_state(run_weights(tmp_path / "checkpoints", "last"), tr.eval_model.state_dict())
    np.testing.assert_allclose(
        tr.predict_proba(valid, checkpoint="last"), tr.predict_proba(valid), rtol=1e-12
    )


def test_resume_with_ema_is_exact(data, tmp_path: Path) -> None:
    train, valid = data
    opt = OptimConfig(name="adamw", lr=5e-3)
    straight = Trainer(new_model(), opt, tcfg(max_epochs=4, ema=0.95), tmp_path / "a", CLASSES)
    h_straight = straight.fit(train, valid)
    Trainer(new_model(), opt, tcfg(max_epochs=2, ema=0.95), tmp_path / "b", CLASSES).fit(
        train, valid
    )
    with pytest.raises(ConfigError, match=r"trainer\.ema set as in the resumed run.*trainer\.ema"):
        Trainer(new_model(), opt, tcfg(max_epochs=4), tmp_path / "b", CLASSES).fit(
            train, valid, resume=True
        )
    resumed = Trainer(new_model(7), opt, tcfg(max_epochs=4, ema=0.95), tmp_path / "b", CLASSES)
    h_resumed = resumed.fit(train, valid, resume=True)
    assert strip(h_straight) == strip(h_resumed)
    assert same_state(straight.eval_model.state_dict(), resumed.eval_model.state_dict())
    assert resumed.ema is not None and resumed.ema.steps == straight.ema.steps == 4 * 13


def test_label_smoothing_loss_is_torchs(data) -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(10, 3), torch.tensor([0, 1, 2, 2, 1, 0, 0, 2, 1, 1])
    w = torch.tensor([0.5, 1.0, 2.0])
    obj = Objective("multiclass", 3, TrainerConfig(label_smoothing=0.1))
    want = F.cross_entropy(logits, y, weight=w, label_smoothing=0.1)
    torch.testing.assert_close(obj.loss(logits, y, y, w, 1), want)
    # two processes' shares average (as DDP averages gradients) to the global batch's loss
    halves = [obj.loss(logits[s], y[s], y, w, 2) for s in (slice(0, 5), slice(5, 10))]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, want)
    # the validation loss is never smoothed
    plain = Objective("multiclass", 3, TrainerConfig())
    assert obj.valid_loss(logits, y, w) == plain.valid_loss(logits, y, w)
    assert obj.loss(logits, y, y, w, 1) != plain.loss(logits, y, y, w, 1)

    ml = Objective("multilabel", 3, TrainerConfig(label_smoothing=0.2))
    ym = (torch.rand(10, 3) > 0.5).float()
    torch.testing.assert_close(
        ml.loss(logits, ym, ym, None, 1), F.binary_cross_entropy_with_logits(logits, ym * 0.8 + 0.1)
    )
    with pytest.raises(ValidationError, match="label_smoothing"):
        TrainerConfig(label_smoothing=1.0)
    with pytest.raises(ValidationError, match="ema"):
        TrainerConfig(ema=1.5)


def test_a_recipe_trains_with_ema_and_smoothing(tmp_path: Path) -> None:
    """From a recipe (the Python API, as the CLI's --set): best.safetensors, which predict,
    export and explain read, holds the average's weights, not the trained ones."""
    import medtorch as mt
    from test_api import _uci_csv

    recipe = mt.load_recipe(
        "lab2_seizure_cnn",
        overrides={"task.params.path": str(_uci_csv(tmp_path / "uci.csv")), "eval.n_bootstrap": 0,
                   "trainer.ema": 0.9, "trainer.label_smoothing": 0.1, "trainer.monitor": "epoch"},
        max_epochs=2, batch_size=32, progress=False,
    )  # fmt: skip
    run = mt.train(recipe, out=tmp_path / "runs")
    assert run.status == "finished" and run.config.trainer.ema == 0.9
    last = load_checkpoint(run.path / "checkpoints" / "last.pt")
    best = run_weights(run.path / "checkpoints", "best")  # monitor epoch: the last epoch
    assert same_state(best, last["ema_model"]) and not same_state(best, last["model"])
    assert last["ema_steps"] == 2 * int(np.ceil(run.splits["partitions"]["train"]["n"] / 32))

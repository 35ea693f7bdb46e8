"""The trainer's small pieces, each alone: validation metrics, model selection, input kinds
(augmentation and TTA touch only what may be flipped), the multilabel objective, atomic run
files, the stop-signal messages, and a bit-for-bit check of a shipped recipe."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.config import AugmentConfig, OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, DataError
from medtorch.train import Trainer, atomic
from medtorch.train.inputs import augment_batch, default_kinds, resolve_kinds, tta_views
from medtorch.train.parts import valid_metrics
from medtorch.train.progress import log_epoch
from medtorch.train.selection import Selection
from medtorch.train.signals import resume_command


def tcfg(**kw) -> TrainerConfig:
    base = {"max_epochs": 3, "batch_size": 32, "progress": False, "seed": 1, "num_threads": 1}
    return TrainerConfig(**{**base, **kw})


# -- validation metrics come from medtorch.metrics -------------------------------------------
def sklearn_valid_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The trainer's former validation metrics, written with scikit-learn directly."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    pred, present = proba.argmax(1), np.unique(y)
    if len(present) < 2:
        auroc = math.nan
    elif proba.shape[1] == 2:
        auroc = float(roc_auc_score(y, proba[:, 1]))
    else:
        auroc = float(np.mean([roc_auc_score(y == k, proba[:, k]) for k in present]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = float(balanced_accuracy_score(y, pred))
    return {
        "valid_accuracy": float((pred == y).mean()),
        "valid_balanced_accuracy": bacc,
        "valid_auroc": auroc,
        "valid_macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def test_valid_metrics_match_scikit_learn_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for t in range(120):
        k, n = int(rng.integers(2, 7)), int(rng.integers(3, 300))
        y = rng.integers(0, k, n)
        if t % 5 == 0:
            y = np.where(y == k - 1, 0, y)  # a class absent from y
        if t % 7 == 0:
            y[:] = 0  # one class only
        logits = rng.normal(size=(n, k)) * rng.uniform(0.1, 5)
        if t % 3 == 0:
            logits[:, 0] += 3  # early training: one class predicted nearly always
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        want, got = sklearn_valid_metrics(y, p), valid_metrics(y, p)
        for key, value in want.items():
            assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), (t, key)


# -- model selection ---------------------------------------------------------------------------
def test_selection_tracks_the_best_and_stops_early() -> None:
    sel = Selection(TrainerConfig(monitor="valid_accuracy", patience=2, max_epochs=10), True)
    assert sel.mode == "max"
    flags = [sel.update(e, s) for e, s in enumerate([0.5, 0.7, math.nan, 0.6], start=1)]
    assert flags == [True, True, False, False]
    assert (sel.best_epoch, sel.best_score, sel.stopped_early) == (2, 0.7, True)
    again = Selection(TrainerConfig(monitor="valid_accuracy"), True)
    again.load(sel.state())
    assert again.state() == sel.state()
    loss = Selection(TrainerConfig(monitor="valid_accuracy"), has_valid=False)
    assert (loss.monitor, loss.mode) == ("train_loss", "min")


def test_epoch_log_line(caplog) -> None:
    row = {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.4, "valid_auroc": 0.9, "lr": 1e-3,
           "epoch_time_s": 1.25}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="medtorch"):
        log_epoch(row, 5, "valid_auroc", True, True)
    assert (
        "epoch 2/5 train_loss 0.5000 valid_loss 0.4000 valid_auroc 0.9000 lr 1.00e-03"
        in caplog.text
    )
    assert caplog.text.rstrip().endswith("*")


# -- input kinds: augmentation and TTA touch only signals and images ---------------------------
def test_default_kinds_follow_the_old_rule() -> None:
    x3 = np.zeros((2, 1, 8), np.float32)
    assert default_kinds({"x": x3, "rr": np.zeros((2, 4), np.float32)}) == {
        "x": "signal", "rr": "features"}  # fmt: skip
    assert default_kinds({"x": np.zeros((2, 3, 4, 4), np.float32)}) == {"x": "image"}
    assert default_kinds({"x": np.zeros((2, 1, 8), np.int64)}) == {"x": "codes"}
    with pytest.raises(ConfigError, match=r"input_kinds\['x'\]"):
        resolve_kinds({"x": "signal"}, {"x": np.zeros((2, 1, 8), np.int64)})
    with pytest.raises(ConfigError, match="input names"):
        resolve_kinds({"visits": "codes"}, {"x": x3})
    with pytest.raises(ConfigError, match="one of"):
        resolve_kinds({"x": "waveform"}, {"x": x3})


def test_codes_are_never_flipped_or_reversed() -> None:
    aug = AugmentConfig(reverse_time=True, flip_sign=True, gain=0.2, time_shift=2)
    codes = torch.arange(24).reshape(4, 1, 6)
    sig = torch.randn(4, 1, 6)
    out = augment_batch([sig, codes], ["signal", "codes"], aug)
    assert torch.equal(out[1], codes) and not torch.equal(out[0], sig)
    assert len(list(tta_views([codes, sig], ["codes", "features"]))) == 1
    views = list(tta_views([codes, sig.clone()], ["codes", "signal"]))
    assert len(views) == 4 and all(torch.equal(v[0], codes) for v in views)
    assert torch.equal(views[1][1], sig.flip(-1))


class Recorder(nn.Module):
    """Embeds integer codes (N, 1, T) and keeps every training batch it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 4)
        self.out = nn.Linear(4, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.clone())
        return self.out(self.emb(x[:, 0]).mean(1))


def test_trainer_leaves_declared_codes_alone_under_augmentation() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 50, size=(64, 1, 10))
    ds = ArrayDataset({"x": codes}, rng.integers(0, 2, 64), np.arange(64).astype(str), ["a", "b"])
    aug = {"reverse_time": True, "flip_sign": True, "time_shift": 3}
    for kinds in ({"x": "codes"}, None):  # declared, and the integer default
        model = Recorder()
        tr = Trainer(model, OptimConfig(), tcfg(max_epochs=1, augment=aug), None, ["a", "b"],
                     input_kinds=kinds)  # fmt: skip
        tr.fit(ds, None)
        rows = {tuple(r.ravel().tolist()) for r in codes}
        assert all(tuple(r.ravel().tolist()) in rows for b in model.seen for r in b)
        assert tr.predict_proba(ds, tta=True).shape == (64, 2)


# -- the multilabel objective ------------------------------------------------------------------
def multilabel_ds(n: int, seed: int) -> ArrayDataset:
    """Three labels, each the sign of its own direction of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    w = np.random.default_rng(123).normal(size=(6, 3))  # the same directions in every split
    y = (x @ w > 0).astype(np.int64)  # (N, 3) of 0/1
    return ArrayDataset({"x": x}, y, np.arange(n).astype(str), ["flu", "copd", "chf"])


def test_multilabel_objective_learns_and_predicts_sigmoids(tmp_path: Path) -> None:
    train, valid = multilabel_ds(400, 0), multilabel_ds(200, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    tr = Trainer(model, OptimConfig(lr=1e-2), tcfg(max_epochs=15, monitor="valid_auroc"),
                 tmp_path, train.class_names, objective="multilabel")  # fmt: skip
    hist = tr.fit(train, valid)
    assert hist[-1]["valid_auroc"] > 0.95 and hist[-1]["valid_accuracy"] > 0.85
    assert hist[-1]["valid_loss"] < hist[0]["valid_loss"]
    p = tr.predict_proba(valid, checkpoint="best")
    assert p.shape == (200, 3) and ((p >= 0) & (p <= 1)).all()
    assert not np.allclose(p.sum(1), 1.0)  # one sigmoid per label, not a softmax
    logits = tr.model(torch.from_numpy(valid.inputs["x"])).double()
    np.testing.assert_allclose(tr.predict_proba(valid), torch.sigmoid(logits).detach().numpy())
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(),
                                                         torch.from_numpy(valid.y).float())  # fmt: skip
    assert tr._valid_row(valid, tr._tensors(valid), torch.from_numpy(valid.y).float(), None)[
        "valid_loss"] == pytest.approx(loss.item(), rel=1e-5)  # fmt: skip
    # it resumes like any other run
    again = Trainer(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)), OptimConfig(lr=1e-2),
                    tcfg(max_epochs=15, monitor="valid_auroc"), tmp_path, train.class_names,
                    objective="multilabel")  # fmt: skip
    assert len(again.fit(train, valid, resume=True)) == 15


def test_multilabel_refuses_multiclass_settings_and_bad_labels() -> None:
    train = multilabel_ds(50, 0)
    model = nn.Linear(6, 3)
    with pytest.raises(ConfigError, match="class_weights"):
        Trainer(model, OptimConfig(), tcfg(class_weights="balanced"), None, train.class_names,
                objective="multilabel")  # fmt: skip
    tr = Trainer(model, OptimConfig(), tcfg(), None, ["a", "b", "c"], objective="multilabel")
    flat = ArrayDataset({"x": train.inputs["x"]}, np.zeros(50, int), train.groups, ["a", "b", "c"])
    with pytest.raises(DataError, match=r"\(N, 3\) of 0/1"):
        tr.fit(flat, None)


# -- atomic files and signals ------------------------------------------------------------------
def test_atomic_write_and_keep_previous(tmp_path: Path) -> None:
    path = tmp_path / "a" / "last.pt"
    atomic.write_bytes(path, b"one")
    atomic.keep_previous(path, tmp_path / "a" / "prev.pt")
    atomic.write_bytes(path, b"two")
    assert path.read_bytes() == b"two" and (tmp_path / "a" / "prev.pt").read_bytes() == b"one"
    assert not list((tmp_path / "a").glob("*.tmp"))
    (tmp_path / "a" / "x.tmp").write_text("")
    assert [p.name for p in atomic.clean_stale(tmp_path / "a")] == ["x.tmp"]


def test_resume_command_is_quoted_for_the_shell() -> None:
    assert resume_command(Path("runs/a b")) == "medtorch train --resume 'runs/a b'"
    assert resume_command(Path("runs/lab2-1")) == "medtorch train --resume runs/lab2-1"

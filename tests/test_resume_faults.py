"""Faults during training, in process: a crash between checkpoint files, damaged checkpoints,
stale temporary files, a full disk, SIGTERM / SIGINT, and a stop before the first epoch.

Every case ends with the weights and history of an unbroken run (the subprocess kill -9
suite is tests/test_faults.py).
"""

from __future__ import annotations

import csv
import errno
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import MedtorchError
from medtorch.train import Trainer, atomic
from medtorch.train import checkpoint as ckpt
from medtorch.train.signals import TrainingInterrupted

CLASSES = ["neg", "pos"]
TIMING = ("epoch_time_s", "train_samples_per_s")

OPT = OptimConfig(lr=5e-3, scheduler="cosine")


def make_ds(n: int, seed: int) -> ArrayDataset:
    """Linearly separable with a margin (as in test_trainer)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    w = np.linspace(1.0, -1.0, 8, dtype=np.float32)
    y = (rng.random(n) < 0.5).astype(np.int64)
    x += np.outer(np.where(y == 1, 1.0, -1.0), w / np.linalg.norm(w))
    return ArrayDataset({"x": x}, y, np.arange(n).astype(str), CLASSES)


def new_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def tcfg(**kw) -> TrainerConfig:
    base = {"max_epochs": 3, "batch_size": 32, "progress": False, "seed": 1, "num_threads": 1}
    return TrainerConfig(**{**base, **kw})


def strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


EPOCHS = 4


class Crash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def data():
    return make_ds(300, seed=0), make_ds(150, seed=1)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The unbroken run every faulted run must end as: (trainer, best probabilities)."""
    train, valid = data
    tr = Trainer(new_model(), OPT, cfg(), tmp_path_factory.mktemp("straight"), CLASSES)
    tr.fit(train, valid)
    return tr, tr.predict_proba(valid, checkpoint="best")


def cfg(**kw):
    return tcfg(max_epochs=EPOCHS, monitor="valid_loss", **kw)


def crash_in_epoch(model, epoch: int, steps_per_epoch: int = 10) -> None:
    """Raise Crash at the first training step of ``epoch`` (300 rows / batch 32 = 10 steps)."""
    calls = {"n": 0}

    def bomb(module, args):
        calls["n"] += module.training
        if calls["n"] > (epoch - 1) * steps_per_epoch:
            raise Crash

    model.register_forward_pre_hook(bomb)


def resume_and_check(run: Path, data, straight, seed: int = 99) -> Trainer:
    """Resume ``run`` in a new trainer (initial weights from ``seed``: a restart from epoch 1
    needs the run's own initial weights, as the pipeline's seeded model builder gives)."""
    train, valid = data
    ref, ref_proba = straight
    resumed = Trainer(new_model(seed=seed), OPT, cfg(), run, CLASSES)
    hist = resumed.fit(train, valid, resume=True)
    assert same_state(ref.model.state_dict(), resumed.model.state_dict())
    assert strip(hist) == strip(ref.history)
    assert (resumed.predict_proba(valid, checkpoint="best") == ref_proba).all()
    assert resumed.best_epoch == ref.best_epoch
    folder = run / "checkpoints"
    last = ckpt.load_checkpoint(folder / "last.pt")
    assert ckpt.best_is_current(folder, last)
    assert ckpt.load_checkpoint(folder / "best.pt")["epoch"] == last["best_epoch"]
    assert not list(folder.glob("*.tmp"))
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    return resumed


def test_crash_between_checkpoint_files_is_repaired_on_resume(
    data, straight, tmp_path: Path, monkeypatch
) -> None:
    """last.pt written, best.pt / best.safetensors not: the copies are stale, never trusted."""
    train, valid = data
    real = ckpt.write_best
    calls = {"n": 0}

    def write_best_then_crash(folder, state):
        calls["n"] += 1
        if state["epoch"] == 3 and state["best_epoch"] == 3:
            raise Crash  # the process dies between last.pt and best.pt
        real(folder, state)

    monkeypatch.setattr(ckpt, "write_best", write_best_then_crash)
    assert straight[0].history[2]["valid_loss"] < straight[0].history[1]["valid_loss"]
    with pytest.raises(Crash):
        Trainer(new_model(), OPT, cfg(), tmp_path, CLASSES).fit(train, valid)
    monkeypatch.setattr(ckpt, "write_best", real)
    folder = tmp_path / "checkpoints"
    last = ckpt.load_checkpoint(folder / "last.pt")
    assert last["epoch"] == 3 and last["best_epoch"] == 3
    assert ckpt.load_checkpoint(folder / "best.pt")["epoch"] == 2  # stale copy on disk...
    assert not ckpt.best_is_current(folder, last)  # ...and recognised as such
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) <= last["epoch"]  # history never runs ahead of the checkpoint
    resume_and_check(tmp_path, data, straight)


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "garbage"])
def test_damaged_last_checkpoint_falls_back_to_the_previous(
    data, straight, tmp_path: Path, damage: str, caplog
) -> None:
    train, valid = data
    model = new_model()
    crash_in_epoch(model, 4)
    with pytest.raises(Crash):
        Trainer(model, OPT, cfg(), tmp_path, CLASSES).fit(train, valid)
    last = tmp_path / "checkpoints" / "last.pt"
    blob = last.read_bytes()
    last.write_bytes({"truncated": blob[: len(blob) // 2], "zero_bytes": b"",
                      "garbage": os.urandom(len(blob))}[damage])  # fmt: skip
    with pytest.raises(MedtorchError) as exc:
        ckpt.load_checkpoint(last)
    assert "\n" not in str(exc.value) and "last.pt" in str(exc.value)
    with caplog.at_level("WARNING", logger="medtorch"):
        resume_and_check(tmp_path, data, straight)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("last.pt" in w and "damaged" in w for w in warnings)
    assert any("prev.pt (epoch 2)" in w for w in warnings)


def test_no_readable_checkpoint_restarts_from_epoch_one(data, straight, tmp_path: Path) -> None:
    train, valid = data
    model = new_model()
    crash_in_epoch(model, 2)
    with pytest.raises(Crash):
        Trainer(model, OPT, cfg(), tmp_path, CLASSES).fit(train, valid)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    assert not (tmp_path / "checkpoints" / "prev.pt").exists()
    resume_and_check(tmp_path, data, straight, seed=0)


def test_changed_weights_are_detected_by_their_checksum(tmp_path: Path, data) -> None:
    train, valid = data
    Trainer(new_model(), OPT, tcfg(max_epochs=2), tmp_path, CLASSES).fit(train, valid)
    last = tmp_path / "checkpoints" / "last.pt"
    state = ckpt.load_checkpoint(last)
    state["model"]["0.weight"][0, 0] += 1.0  # a flipped value, file still loads
    torch.save(state, last)
    with pytest.raises(MedtorchError, match="changed model"):
        ckpt.check_resume_state(ckpt.load_checkpoint(last), last)


def test_format_1_checkpoint_is_refused_for_resume_in_one_line(tmp_path: Path, data) -> None:
    train, valid = data
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"format": 1, "model": new_model().state_dict(), "epoch": 1}, folder / "last.pt")
    with pytest.raises(MedtorchError) as exc:
        Trainer(new_model(), OPT, cfg(), tmp_path, CLASSES).fit(train, valid, resume=True)
    msg = str(exc.value)
    assert "\n" not in msg and "format 1" in msg and "medtorch train" in msg
    # prediction still reads a format-1 file's weights (safely)
    assert ckpt.run_weights(folder, "last").keys() == new_model().state_dict().keys()


def test_stale_temporary_files_are_removed(data, tmp_path: Path) -> None:
    train, valid = data
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.pt.tmp").write_bytes(b"half a file")
    (folder / "best.pt.tmp").write_bytes(b"")
    plain = OptimConfig(lr=5e-3)
    Trainer(new_model(), plain, tcfg(max_epochs=1), tmp_path, CLASSES).fit(train, valid)
    assert not list(folder.glob("*.tmp"))
    (folder / "last.pt.tmp").write_bytes(b"half a file")
    Trainer(new_model(), plain, tcfg(max_epochs=2), tmp_path, CLASSES).fit(
        train, valid, resume=True
    )
    assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize(
    ("err", "words"),
    [(errno.ENOSPC, "no space left"), (errno.EACCES, "no permission"), (errno.EROFS, "read-only")],
)
def test_disk_full_or_read_only_is_one_line_naming_the_folder(
    data, tmp_path: Path, monkeypatch, err: int, words: str
) -> None:
    train, valid = data
    real = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("last.pt") and ckpt.load_checkpoint(src)["epoch"] == 2:
            raise OSError(err, os.strerror(err))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(MedtorchError) as exc:
        Trainer(new_model(), OPT, tcfg(max_epochs=3), tmp_path, CLASSES).fit(train, valid)
    msg = str(exc.value)
    assert "\n" not in msg and words in msg and str(tmp_path / "checkpoints") in msg
    folder = tmp_path / "checkpoints"
    assert ckpt.load_checkpoint(folder / "last.pt")["epoch"] == 1  # the previous one intact
    assert not list(folder.glob("*.tmp"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_at_a_safe_point_with_the_resume_command(
    data, straight, tmp_path: Path, sig: int, code: int
) -> None:
    train, valid = data
    model = new_model()
    calls = {"n": 0}

    def send(module, args):
        calls["n"] += module.training
        if calls["n"] == 25:  # epoch 3, step 5
            os.kill(os.getpid(), sig)

    model.register_forward_pre_hook(send)
    with pytest.raises(TrainingInterrupted) as exc:
        Trainer(model, OPT, cfg(), tmp_path, CLASSES).fit(train, valid)
    msg = str(exc.value)
    assert exc.value.exit_code == code
    assert f"medtorch train --resume {tmp_path}" in msg and "after epoch 2 of 4" in msg
    assert "\n" not in msg
    assert signal.getsignal(sig) is not None and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN
    assert ckpt.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2
    resume_and_check(tmp_path, data, straight)


def test_stop_before_the_first_checkpoint_restarts_on_resume(
    data, straight, tmp_path: Path
) -> None:
    train, valid = data
    model = new_model()
    calls = {"n": 0}

    def send(module, args):
        calls["n"] += module.training
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    model.register_forward_pre_hook(send)
    with pytest.raises(TrainingInterrupted, match="before the first epoch finished") as exc:
        Trainer(model, OPT, cfg(), tmp_path, CLASSES).fit(train, valid)
    assert f"--resume {tmp_path}" in str(exc.value)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()
    resume_and_check(tmp_path, data, straight, seed=0)


def test_wall_time_of_a_resumed_run_counts_every_session(data, tmp_path: Path) -> None:
    train, valid = data
    first = Trainer(new_model(), OPT, tcfg(max_epochs=2), tmp_path, CLASSES)
    first.fit(train, valid)
    done = ckpt.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["train_wall_s"]
    assert done > 0
    again = Trainer(new_model(), OPT, tcfg(max_epochs=3), tmp_path, CLASSES)
    with pytest.raises(MedtorchError):  # a cosine schedule of another length is refused
        again.fit(train, valid, resume=True)
    plain = OptimConfig(lr=5e-3)
    Trainer(new_model(), plain, tcfg(max_epochs=2), tmp_path / "p", CLASSES).fit(train, valid)
    more = Trainer(new_model(), plain, tcfg(max_epochs=3), tmp_path / "p", CLASSES)
    more.fit(train, valid, resume=True)
    prior = more.prior_wall_s
    assert prior > 0
    total = ckpt.load_checkpoint(tmp_path / "p" / "checkpoints" / "last.pt")["train_wall_s"]
    assert total > prior

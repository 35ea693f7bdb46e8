"""Checkpoint files: what they hold, how they are written, and how they are read safely.

Nothing here runs code from a file. The resume state is a ``torch.save`` dict of tensors and
plain values read with ``weights_only=True`` (PyTorch's restricted unpickler: a pickled
``__reduce__`` payload is refused, in one line, before it runs); the best weights a run
shares are also in ``best.safetensors``, a format that has no code path at all.

One consistent state. ``checkpoints/last.pt`` is the single source of truth: it holds the
last epoch's training state *and* the best epoch's weights (``best_model``), with a sha256
of each. ``best.pt`` and ``best.safetensors`` are copies of ``best_model`` derived from it,
written after it and carrying its epoch and checksum, so a crash between files leaves
copies that :func:`sync_best` recognises as stale and rewrites on resume. Per epoch::

    last.pt -> prev.pt   (hard link: the previous good state, kept for a damaged last.pt)
    last.pt              (atomic: temp file, fsync, rename, fsync the folder)
    best.pt, best.safetensors   (only when the best epoch changed)
    history.csv          (written from the checkpoint's history, so never ahead of it)

Layout of ``last.pt`` (``format`` 2)::

    format                      2
    model, best_model           state_dicts of the last and of the best epoch
    ema_model, ema_steps        under trainer.ema: the weight average after the last epoch and
                                its update count (None without it); best_model is then the
                                average's best epoch
    checksums                   {"model": sha256, ...} of each of those weight dicts
    optimizer, scheduler, scaler  state_dicts (scheduler / scaler None when unused)
    epoch                       epochs completed (1-based)
    best_epoch, best_score      best monitored value so far and its epoch (None before one)
    epochs_without_improvement, stopped_early, schedule_steps
    train_wall_s                seconds spent training up to this epoch, over every session
    cpu_mkldnn, cpu_threads     the CPU kernel choice (kept on resume: same floating point)
    history                     list of per-epoch dicts (see ``HISTORY_COLUMNS``)
    rng, rng_ranks, world_size  every RNG (per process under torchrun)
    monitor, monitor_mode, class_names, objective ("multiclass" / "multilabel"), config

Format 1 (before the best weights moved into ``last.pt``) is still read for prediction;
resuming it is refused with a line saying to retrain.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.train import atomic, faults
from medtorch.train.weights import (
    CheckpointError,
    RefusedCheckpointError,
    load_weights,
    save_weights,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "load_weights",
    "save_weights",
]

log = logging.getLogger("medtorch")

CHECKPOINT_FORMAT = 2
LAST, PREVIOUS, BEST, BEST_WEIGHTS = "last.pt", "prev.pt", "best.pt", "best.safetensors"
RESUME_KEYS = ("model", "best_model", "optimizer", "epoch", "history", "rng", "schedule_steps")
WEIGHT_KEYS = ("model", "best_model", "ema_model")  # the weight dicts a checksum covers


# -- RNG state -------------------------------------------------------------------------------
def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    """Every RNG the training loop can touch, as tensors and plain values."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global state is the point)
    assert isinstance(np_state, dict)
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "shuffle": shuffle.get_state(),
    }


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved (CUDA state only where CUDA is present)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": npst["bit_generator"],
            "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
            "has_gauss": npst["has_gauss"],
            "gauss": npst["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    shuffle.set_state(state["shuffle"])


# -- reading and writing one file --------------------------------------------------------------
def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A checksum of a state_dict's names, dtypes, shapes and values."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` into memory, then :func:`medtorch.train.atomic.write_bytes`: a crash
    leaves the previous file intact, a full disk is one line naming the folder."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic.write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU without running code from it.

    A damaged file (zero bytes, cut short) or one holding anything but tensors and plain
    values is refused with a one-line :class:`CheckpointError` naming it.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can fail in any way: each is one line
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise RefusedCheckpointError(
                f"expected a checkpoint of tensors and plain values, got a file that would run "
                f"code ({found.group(1)}) in {path}; refused: load run folders only from a "
                "trusted source"
            ) from None
        why = str(exc).split(".")[0].strip()[:120] or type(exc).__name__
        size = path.stat().st_size if path.is_file() else 0
        raise CheckpointError(
            f"expected a complete checkpoint, got a damaged file ({size} bytes: {why}) in "
            f"{path}; resume falls back to the previous checkpoint, or retrain the run"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"expected a checkpoint dict, got {type(state).__name__} in {path}; "
            "pass a file written by `medtorch train`"
        )
    return state


def check_resume_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check that ``state`` is a complete format-2 resume state with intact weights."""
    fmt_ = state.get("format")
    if fmt_ != CHECKPOINT_FORMAT:
        raise RefusedCheckpointError(
            f"expected checkpoint format {CHECKPOINT_FORMAT}, got format {fmt_} in {path}; "
            "this run was written by an older medtorch and cannot be resumed exactly: "
            "train it again with `medtorch train <recipe>` (prediction still reads it)"
        )
    missing = [k for k in RESUME_KEYS if k not in state]
    sums = state.get("checksums") or {}
    bad = [k for k in WEIGHT_KEYS if k in state and state[k] is not None
           and sums.get(k) != weights_sha256(state[k])]  # fmt: skip
    if missing or bad:
        raise CheckpointError(
            f"expected a complete checkpoint, got one with "
            f"{'missing ' + ', '.join(missing) if missing else 'changed ' + ', '.join(bad)} "
            f"in {path}; resume falls back to the previous checkpoint, or retrain the run"
        )
    return state


# -- one epoch's files -----------------------------------------------------------------------
def best_export(state: dict[str, Any]) -> dict[str, Any]:
    """The ``best.pt`` dict: the best epoch's weights, its epoch and the weights' checksum."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state["best_model"],
        "weights_sha256": state["checksums"]["best_model"],
        "epoch": state["best_epoch"],
        "best_epoch": state["best_epoch"],
        "best_score": state["best_score"],
        "monitor": state.get("monitor"),
        "monitor_mode": state.get("monitor_mode"),
        "class_names": state.get("class_names"),
        "config": state.get("config"),
    }


def write_best(folder: Path, state: dict[str, Any]) -> None:
    """Write ``best.pt`` and ``best.safetensors`` from a resume state's ``best_model``."""
    if state.get("best_model") is None:
        return
    save_atomic(best_export(state), folder / BEST)
    meta = {
        "format": "1",
        "epoch": str(state["best_epoch"]),
        "weights_sha256": state["checksums"]["best_model"],
        "monitor": str(state.get("monitor")),
        "best_score": repr(state["best_score"]),
    }
    save_weights(state["best_model"], folder / BEST_WEIGHTS, meta)


def write_epoch(folder: Path, state: dict[str, Any], best_changed: bool) -> None:
    """Write one epoch's checkpoint files in the crash-safe order (see the module doc)."""
    state["checksums"] = {
        k: weights_sha256(state[k]) for k in WEIGHT_KEYS if state.get(k) is not None
    }
    atomic.keep_previous(folder / LAST, folder / PREVIOUS)
    save_atomic(state, folder / LAST)
    faults.pause("between_files", path=folder / LAST)  # test hook
    if best_changed or not (folder / BEST_WEIGHTS).is_file():
        write_best(folder, state)


def best_is_current(folder: Path, state: dict[str, Any]) -> bool:
    """True when best.pt and best.safetensors hold ``state``'s best weights."""
    want = (state.get("checksums") or {}).get("best_model")
    try:
        _, meta = load_weights(folder / BEST_WEIGHTS)
        best = load_checkpoint(folder / BEST)
    except (CheckpointError, FileNotFoundError):
        return False
    return want is not None and meta.get("weights_sha256") == want == best.get("weights_sha256")


def sync_best(folder: Path, state: dict[str, Any]) -> None:
    """Rewrite the best-weights files from ``state`` when a crash left them stale."""
    if state.get("best_model") is not None and not best_is_current(folder, state):
        log.info("rewrote %s and %s from %s (best epoch %s)", BEST, BEST_WEIGHTS, LAST,
                 state["best_epoch"])  # fmt: skip
        write_best(folder, state)


def load_resume_state(folder: Path) -> dict[str, Any] | None:
    """The newest good resume state in ``folder``; None when there is none yet.

    A damaged ``last.pt`` is reported in one line and ``prev.pt`` (the epoch before) is used
    instead, and copied back to ``last.pt``; with no good state at all, training restarts.
    Stale temporary files are removed first.
    """
    for stale in atomic.clean_stale(folder):
        log.info("removed %s, left by an interrupted write", stale)
    last, prev = folder / LAST, folder / PREVIOUS
    if not last.is_file() and not prev.is_file():
        return None
    for path in (last, prev):
        if not path.is_file():
            continue
        try:
            state = check_resume_state(load_checkpoint(path), path)
        except RefusedCheckpointError:
            raise  # crafted or of another format: never silently skipped
        except CheckpointError as exc:
            log.warning("warning: %s", exc)
            continue
        if path == prev:
            log.warning("warning: resuming from %s (epoch %d), the state before the damaged "
                        "%s", path, state["epoch"], LAST)  # fmt: skip
            atomic.write_bytes(last, prev.read_bytes())
        return state
    log.warning("warning: no readable checkpoint in %s; training restarts from epoch 1", folder)
    return None


def write_history(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """``history.csv`` (atomic), from a checkpoint's history so it never runs ahead of it."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    atomic.write_text(path, buf.getvalue())


# -- reading a run's weights (predict, evaluate, export) ----------------------------------------
def run_weights(folder: Path, which: str = "best") -> dict[str, torch.Tensor]:
    """The model weights of a run's checkpoint folder, read without running code.

    ``best``: ``best.safetensors`` where present (checked against its checksum), else
    ``best.pt`` (older runs); ``last``: ``last.pt``'s last-epoch network
    (:func:`network_weights`).
    """
    folder = Path(folder)
    if which == "best" and (folder / BEST_WEIGHTS).is_file():
        state, meta = load_weights(folder / BEST_WEIGHTS)
        if "weights_sha256" in meta and meta["weights_sha256"] != weights_sha256(state):
            raise CheckpointError(
                f"expected weights matching their checksum, got changed weights in "
                f"{folder / BEST_WEIGHTS}; the file is damaged: resume or retrain the run"
            )
        return state
    path = folder / f"{which}.pt"
    if not path.is_file():
        raise CheckpointError(f"expected a checkpoint at {path}, got none; train the run first")
    weights = network_weights(load_checkpoint(path))
    if not isinstance(weights, dict):
        raise CheckpointError(
            f"expected model weights in {path}, got none; "
            "pass a run folder written by `medtorch train`"
        )
    return weights


def network_weights(state: Mapping[str, Any]) -> Any:
    """The weights a checkpoint's network predicts with: the moving average where the run
    kept one (``trainer.ema``), else ``model``."""
    ema = state.get("ema_model")
    return ema if ema is not None else state.get("model")


def patch_weights(folder: Path, fitted: Mapping[str, torch.Tensor]) -> None:
    """Write tensors fitted after training (e.g. a model's second stage) into every
    checkpoint of a run, keeping each file's checksums right."""
    for path in sorted(Path(folder).glob("*.pt")):
        state = load_checkpoint(path)
        for key in WEIGHT_KEYS:
            if isinstance(state.get(key), dict):
                state[key].update(fitted)
        if "checksums" in state:
            state["checksums"] = {k: weights_sha256(state[k]) for k in state["checksums"]}
        if "weights_sha256" in state:
            state["weights_sha256"] = weights_sha256(state["model"])
        save_atomic(state, path)
    best = Path(folder) / BEST_WEIGHTS
    if best.is_file():
        weights, meta = load_weights(best)
        weights.update(fitted)
        save_weights(weights, best, {**meta, "weights_sha256": weights_sha256(weights)})

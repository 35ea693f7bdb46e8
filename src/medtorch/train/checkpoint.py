"""Checkpoint files and random-number-generator state.

A checkpoint is one ``torch.save`` dict holding only tensors and plain Python values
(numpy state is converted), so :func:`load_checkpoint` reads it with
``weights_only=True``: loading a checkpoint never runs pickled code.

Layout (``format`` 1)::

    format                      1
    model                       model.state_dict()
    optimizer                   optimizer.state_dict()
    scheduler                   scheduler.state_dict() or None
    scaler                      GradScaler.state_dict() or None (fp16 AMP on CUDA only)
    epoch                       epochs completed (1-based), i.e. the epoch this file is from
    best_epoch, best_score      best monitored value so far and its epoch (None before one)
    epochs_without_improvement  early-stopping counter
    stopped_early               True when patience ran out at this epoch
    schedule_steps              scheduler steps of the whole run (resume checks it)
    history                     list of per-epoch dicts (see ``HISTORY_COLUMNS``)
    rng                         {"python", "numpy", "torch", "cuda", "shuffle"}
    rng_ranks                   under torchrun: every process's ``rng``, rank order (else None)
    world_size                  processes that trained it (1 without torchrun; absent before DDP)
    monitor, monitor_mode       the metric and its direction ("min" / "max")
    class_names                 list[str]
    config                      {"optim": OptimConfig dump, "trainer": TrainerConfig dump}
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 1


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


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``.

    A crash mid-write leaves the previous file intact, never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy a finished checkpoint file (cheaper than serialising it twice)."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU (``weights_only=True``: no code is unpickled)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)

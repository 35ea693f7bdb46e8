"""The trainer's building blocks: device, tensors, class weights, optimizer, scheduler, metrics.

Each is a small pure function so it can be tested alone; :mod:`medtorch.train.trainer`
wires them into the loop.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any

import numpy as np
import torch

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.errors import ConfigError, SplitError, fmt
from medtorch.train.cpu import forward_cost, mkldnn_enabled, pick_cpu_kernels
from medtorch.train.step import FastAdamStep

# moved to train/cpu.py and train/step.py; importable from here as before
__all__ = ["FastAdamStep", "forward_cost", "mkldnn_enabled", "pick_cpu_kernels"]

MONITORS = (
    "valid_loss",
    "valid_accuracy",
    "valid_balanced_accuracy",
    "valid_auroc",
    "valid_macro_f1",
    "train_loss",
    "epoch",  # the last epoch is the best: for a fixed schedule such as one-cycle
)
HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "valid_loss",
    "valid_accuracy",
    "valid_balanced_accuracy",
    "valid_auroc",
    "valid_macro_f1",
    "lr",
    "epoch_time_s",
    "train_samples_per_s",
)


def select_device(name: str) -> torch.device:
    """``auto``: cuda, else mps, else cpu. Forcing an absent device raises ConfigError."""
    has_mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            fmt(
                "an available device",
                name,
                "trainer.device",
                "no CUDA GPU is visible; use auto or cpu",
            )
        )
    elif name == "mps" and not has_mps:
        raise ConfigError(
            fmt(
                "an available device",
                name,
                "trainer.device",
                "MPS is not available; use auto or cpu",
            )
        )
    return torch.device(name)


def to_tensor(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """One array -> one contiguous tensor on ``device`` (float32 / int64 / bool)."""
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        a = np.ascontiguousarray(a)
    elif np.issubdtype(a.dtype, np.integer):
        a = np.ascontiguousarray(a, dtype=np.int64)
    else:
        a = np.ascontiguousarray(a, dtype=np.float32)
    return torch.from_numpy(a).to(device)


def class_weights(cfg: TrainerConfig, y: np.ndarray, n_classes: int) -> np.ndarray | None:
    """Loss weights per class. ``balanced``: ``n / (K * count_k)`` over the training labels.

    >>> class_weights(TrainerConfig(class_weights="balanced"), np.array([0, 0, 0, 1]), 2)
    array([0.66666667, 2.        ])
    """
    if cfg.class_weights == "none":
        return None
    if cfg.class_weights == "balanced":
        counts = np.bincount(y, minlength=n_classes)
        if (counts == 0).any():
            missing = [int(k) for k in np.flatnonzero(counts == 0)]
            raise SplitError(
                f"expected every class in the training set for balanced class weights, "
                f"got no rows of class index {missing} in trainer.class_weights; "
                "give explicit weights or change the split"
            )
        return len(y) / (n_classes * counts)
    w = np.asarray(cfg.class_weights, dtype=np.float64)
    if len(w) != n_classes:
        raise ConfigError(
            fmt(
                f"{n_classes} weights (one per class)",
                cfg.class_weights,
                "trainer.class_weights",
                "give one float per class, or none / balanced",
            )
        )
    return w


def loss_weights(
    cfg: TrainerConfig, y: np.ndarray, n_classes: int, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The loss's class weights (:func:`class_weights`) as a tensor and, with ``sampler:
    balanced``, each training row's draw weight (each class drawn equally often on average)."""
    w_np = class_weights(cfg, y, n_classes)
    weight = torch.as_tensor(w_np, dtype=torch.float32, device=device) if w_np is not None else None
    sample_w = None
    if cfg.sampler == "balanced":
        counts = np.bincount(y, minlength=n_classes)
        sample_w = torch.as_tensor(1.0 / counts[y], dtype=torch.float64)
    return weight, sample_w


def seed_everything(
    seed: int, rank: int, shuffle: torch.Generator, device: torch.device, deterministic: bool
) -> None:
    """Seed every RNG: the epoch order from ``seed`` (shared by all processes), dropout and
    augmentation from ``seed + rank`` (each process its own stream; rank 0 = one process)."""
    own = seed + rank
    random.seed(own)
    np.random.seed(own % 2**32)  # noqa: NPY002 (third-party code draws from it)
    torch.manual_seed(own)
    shuffle.manual_seed(seed)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD; the fused kernel where every parameter allows it.

    Small clinical models are bound by per-step overhead, not arithmetic: the fused
    update is one kernel for all parameters instead of ~10 small ops per tensor.
    """
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(tensors) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors
    )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused
    )


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: OptimConfig, max_epochs: int, steps_per_epoch: int, mode: str
) -> Any:
    """cosine: per epoch over ``max_epochs`` (ends at 0); onecycle: per batch, peaks at ``lr``
    after ``warmup_pct`` of all steps; plateau: per epoch on the monitored metric."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    if cfg.scheduler == "onecycle":
        cycle_momentum = (
            cfg.name != "sgd" or cfg.momentum > 0
        )  # SGD without momentum has none to cycle
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=[cfg.lr * g.get("lr_mult", 1.0) for g in opt.param_groups],
            total_steps=max_epochs * steps_per_epoch,
            pct_start=cfg.warmup_pct,
            cycle_momentum=cycle_momentum,
        )
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min" if mode == "min" else "max",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
        )
    return None


def valid_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The validation columns of a history row, from :func:`medtorch.metrics.evaluate`.

    accuracy, balanced accuracy; AUROC: the positive class for binary, the mean of the
    one-vs-rest AUROCs of the classes present for multiclass (NaN with under two classes);
    macro F1 over the classes present in the labels or the predictions, a class never
    predicted counting 0 (so early epochs score low rather than undefined).

    >>> v = valid_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.6, .4]]))
    >>> round(v["valid_accuracy"], 3), v["valid_auroc"]
    (0.667, 1.0)
    """
    from medtorch.metrics import evaluate

    k = proba.shape[1]
    names = [str(i) for i in range(k)]
    rep = evaluate(y, proba, names, n_bootstrap=0)
    overall, per_class = rep["overall"], rep["per_class"]
    present = np.unique(y)

    def value(entry: dict[str, Any]) -> float:
        return math.nan if entry["value"] is None else float(entry["value"])

    if len(present) < 2:
        auroc = math.nan
    elif k == 2:
        auroc = value(overall["auroc"])
    else:
        auroc = float(np.mean([value(per_class[names[i]]["auroc"]) for i in present]))
    seen = np.union1d(present, proba.argmax(1))
    f1 = [value(per_class[names[i]]["f1"]) for i in seen]
    return {
        "valid_accuracy": value(overall["accuracy"]),
        "valid_balanced_accuracy": value(overall["balanced_accuracy"]),
        "valid_auroc": auroc,
        "valid_macro_f1": float(np.mean(np.nan_to_num(f1, nan=0.0))),
    }

"""The trainer's building blocks: device, tensors, class weights, optimizer, scheduler, metrics.

Each is a small pure function so it can be tested alone; :mod:`medtorch.train.trainer`
wires them into the loop.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.errors import ConfigError, SplitError, fmt

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
            max_lr=cfg.lr,
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
    """accuracy, balanced accuracy, macro F1 (sklearn) and AUROC: positive class for binary,
    macro one-vs-rest over the classes present for multiclass; NaN with under two classes."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    pred = proba.argmax(1)
    present = np.unique(y)
    if len(present) < 2:
        auroc = math.nan
    elif proba.shape[1] == 2:
        auroc = float(roc_auc_score(y, proba[:, 1]))
    else:
        auroc = float(np.mean([roc_auc_score(y == k, proba[:, k]) for k in present]))
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected early on
        warnings.simplefilter("ignore")
        bacc = float(balanced_accuracy_score(y, pred))
    return {
        "valid_accuracy": float((pred == y).mean()),
        "valid_balanced_accuracy": bacc,
        "valid_auroc": auroc,
        "valid_macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def forward_cost(net: nn.Module, inputs: list[torch.Tensor]) -> tuple[float, int, float, int]:
    """Count one forward pass: (total FLOPs, aten op calls, convolution FLOPs, conv calls)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class _Calls(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = self.convs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.ops += 1
            self.convs += func.overloadpacket is torch.ops.aten.convolution
            return func(*args, **(kwargs or {}))

    training = net.training
    net.eval()  # no BN-statistics or dropout side effects; the same ops run
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            with FlopCounterMode(display=False) as flops, _Calls() as calls:
                net(*inputs)
    finally:
        net.train(training)
    conv = sum(v for k, v in flops.get_flop_counts()["Global"].items() if "convolution" in str(k))
    return float(flops.get_total_flops()), calls.ops, float(conv), calls.convs


def pick_cpu_kernels(
    conv: str,
    threads: int | str | None,
    device: torch.device,
    net: nn.Module,
    inputs: list[torch.Tensor],
    op_flops: float = 1e6,
    conv_flops: float = 2e6,
) -> tuple[bool, int]:
    """Choose oneDNN-or-native CPU convolutions and the thread count for a training run.

    Small clinical models at small batches are bound by fixed per-call costs: oneDNN adds
    ~0.1 ms to every convolution call and a second thread adds synchronisation to every op
    (the lab CNN at batch 10 trains ~1.6x faster with native kernels on one thread), while
    large convolutions are several times faster with oneDNN on every core. ``"auto"``
    decides from the work of one forward pass on a training batch, counted (not timed, so
    the choice, and with it the floating-point results, is the same on every run):
    one thread when ops average under ``op_flops`` FLOPs, native convolutions when
    convolution calls average under ``conv_flops``. Returns (use_onednn, n_threads).
    """
    all_threads = torch.get_num_threads()
    n_threads = threads if isinstance(threads, int) else all_threads
    use_onednn = conv == "mkldnn" or (conv != "native" and bool(torch.backends.mkldnn.enabled))
    if device.type != "cpu" or (conv != "auto" and threads != "auto"):
        return use_onednn, n_threads
    total, ops, conv_total, convs = forward_cost(net, inputs)
    if threads == "auto" and total / max(ops, 1) < op_flops:
        n_threads = 1
    if conv == "auto" and convs:
        use_onednn = conv_total / convs >= conv_flops
    return use_onednn, n_threads


@contextlib.contextmanager
def mkldnn_enabled(enabled: bool) -> Iterator[None]:
    """Switch oneDNN CPU kernels on or off inside the block (and restore the setting after)."""
    prev = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = prev  # type: ignore[assignment]


class FastAdamStep:
    """``opt.step()`` for a fused Adam/AdamW, minus torch.optim's per-call Python.

    At batch 10 a small model's step is ~1 ms and ``Optimizer.step`` spends a tenth of it on
    hooks, state look-ups and grouping before the one fused kernel runs. This calls the same
    kernel on the optimizer's own state tensors (so results and checkpoints are identical to
    ``opt.step()``; a test checks bit-equality), reading lr, betas, eps and weight decay from
    the param group at every step so schedulers keep working. The first call, and any step
    where a parameter has no gradient, go through ``opt.step()`` itself.
    """

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.lists: tuple[list[torch.Tensor], ...] | None = None

    @staticmethod
    def supported(opt: torch.optim.Optimizer) -> bool:
        d = opt.defaults
        params = [p for g in opt.param_groups for p in g["params"]]
        return (
            isinstance(opt, torch.optim.Adam)  # AdamW is an Adam with decoupled weight decay
            and bool(d.get("fused"))
            and not any(d.get(k) for k in ("amsgrad", "maximize", "differentiable", "capturable"))
            and len(opt.param_groups) == 1
            and hasattr(torch, "_fused_adam_")
            and len({(p.device, p.dtype) for p in params}) == 1
        )

    def __call__(self) -> None:
        group = self.opt.param_groups[0]
        if self.lists is None:
            self.opt.step()  # creates the state tensors
            params = list(group["params"])
            state = [self.opt.state[p] for p in params]
            self.lists = (
                params,
                [s["exp_avg"] for s in state],
                [s["exp_avg_sq"] for s in state],
                [s["step"] for s in state],
            )
            return
        params, exp_avgs, exp_avg_sqs, steps = self.lists
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            self.opt.step()
            return
        beta1, beta2 = group["betas"]
        fused = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        torch._foreach_add_(steps, 1)
        fused(
            params,
            grads,  # type: ignore[arg-type]
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

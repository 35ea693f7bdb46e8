"""CPU kernel choice for a training run: oneDNN or native convolutions, and the thread count.

Counted, not timed, so the choice (and with it every floating-point result) is the same on
every run of a recipe; a resumed run reuses the choice saved in its checkpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


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
    conv = sum(
        v for k, v in flops.get_flop_counts().get("Global", {}).items() if "convolution" in str(k)
    )
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

"""Saliency over time for inputs of kind ``signal`` (N, C, T).

The map is SmoothGrad saliency (Smilkov et al. 2017) from captum: the absolute gradient of
the predicted class's logit with respect to each sample of the signal, averaged over a few
noisy copies of the input and summed over channels, then smoothed over a short window and
scaled to [0, 1]. It is drawn as a coloured band under the signal. The gradient, not
gradient x input or integrated gradients, is used: on a planted bump it peaks at the bump
and barely correlates with the map of a weight-randomised copy of a global-average-pooled
network (Adebayo et al. 2018; ``tests/test_explain.py``), where the input-multiplied methods
partly trace the input itself. Behind a max-pooled layer the gradient of any network is
sparse at the input's extremes, and the run's randomisation number says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medtorch.explain.registry import Explainer, Panel, register_explainer, require_captum

N_NOISY = 4  # SmoothGrad samples (few: the report's step stays cheap on a CPU)
NOISE = 0.1  # noise sd, as a fraction of each signal's range


def saliency(model: nn.Module, inputs: Sequence[torch.Tensor], target: torch.Tensor) -> np.ndarray:
    """(N, T) saliency of ``target[i]`` along the time axis of ``inputs[0]``, in [0, 1]."""
    attr = require_captum("the signal saliency")
    x, rest = inputs[0], tuple(inputs[1:])
    span = (x.amax(dim=(1, 2)) - x.amin(dim=(1, 2))).clamp_min(1e-6)
    grads = torch.zeros_like(x, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)  # the same noise every time: a reproducible map
    method = attr.Saliency(model)
    with torch.enable_grad():
        for _ in range(N_NOISY):
            noise = (
                torch.randn(x.shape, generator=gen, dtype=x.dtype) * (NOISE * span)[:, None, None]
            )
            g = method.attribute(x + noise, target=target, abs=True,
                                 additional_forward_args=rest or None)  # fmt: skip
            grads += g.detach().double()
    m = grads.sum(1)  # (N, T)
    width = max(1, x.shape[-1] // 50) | 1  # odd: centred
    if width > 1:  # a short moving average: the band shows regions, not single samples
        kernel = torch.ones(1, 1, width, dtype=m.dtype) / width
        m = nn.functional.conv1d(m[:, None], kernel, padding="same")[:, 0]
    maps = m.numpy()
    top = maps.max(1)
    return maps / np.where(top > 0, top, 1.0)[:, None]


def draw_bands(panels: Sequence[Panel], path: Path) -> None:
    """One row of signals (up to 3 channels), each with its saliency as a band beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 2.6), squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1]}, sharex="col")  # fmt: skip
    for col, p in enumerate(panels):
        top, band = axes[0, col], axes[1, col]
        x = np.asarray(p.x, dtype=np.float64)
        t = np.arange(x.shape[-1])
        for c in range(min(3, x.shape[0])):
            top.plot(t, x[c], lw=0.8, color=f"C{c}")
        top.set_title(p.title, fontsize=7)
        top.tick_params(labelsize=6)
        band.imshow(p.amap[None, :], aspect="auto", cmap="inferno", vmin=0, vmax=1,
                    extent=(-0.5, x.shape[-1] - 0.5, 0, 1))  # fmt: skip
        band.set_yticks([])
        band.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


register_explainer(
    Explainer(
        kind="signal",
        method="SmoothGrad saliency (captum Saliency)",
        attribute=saliency,
        draw=draw_bands,
        note="bright band: the time points where a change of the signal moves the predicted "
        "class's score most (absolute gradient, averaged over noisy copies, scaled per sample)",
    )
)

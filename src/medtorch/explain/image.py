"""Grad-CAM (Selvaraju et al. 2017) for inputs of kind ``image`` (N, C, H, W).

The target layer is the model's ``cam_layer`` attribute when it has one (an ``nn.Module``,
e.g. a ResNet's ``layer4``), else its last ``nn.Conv2d``. The map is captum's
``LayerGradCam`` (ReLU of the gradient-weighted sum of the layer's channels), upsampled
bilinearly to the image and drawn over it as a heat map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtorch.errors import ModelError
from medtorch.explain.registry import Explainer, Panel, register_explainer, require_captum


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: ``model.cam_layer``, else the model's last ``nn.Conv2d``."""
    layer = getattr(model, "cam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ModelError(
            f"expected a model with a cam_layer attribute or an nn.Conv2d, got "
            f"{type(model).__name__} without either in the Grad-CAM target layer; give the "
            "model a cam_layer (its last convolutional block)"
        )
    return convs[-1]


def grad_cam(model: nn.Module, inputs: Sequence[torch.Tensor], target: torch.Tensor) -> np.ndarray:
    """(N, H, W) Grad-CAM maps of ``target[i]`` for the images ``inputs[0]``, each scaled
    to [0, 1] (all zero where the class has no positive evidence)."""
    attr = require_captum("Grad-CAM")
    x, rest = inputs[0], tuple(inputs[1:])
    method = attr.LayerGradCam(model, cam_layer(model))
    with torch.enable_grad():
        cam = method.attribute(x, target=target, additional_forward_args=rest or None,
                               relu_attributions=True)  # fmt: skip
    cam = attr.LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), "bilinear")
    maps = cam.sum(1).clamp_min(0).double().numpy()  # (N, H, W)
    top = maps.reshape(len(maps), -1).max(1)
    return maps / np.where(top > 0, top, 1.0)[:, None, None]


def _shown(x: np.ndarray) -> np.ndarray:
    """An image (C, H, W) as matplotlib shows it: (H, W, 3) or (H, W) in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # not in [0, 1] (encoded): stretch to it for display
        x = (x - lo) / (hi - lo if hi > lo else 1.0)
    return x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)


def draw_overlays(panels: Sequence[Panel], path: Path) -> None:
    """One row of images, each with its Grad-CAM map over it (jet, 45% opaque)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.75), squeeze=False)
    for ax, p in zip(axes[0], panels):
        img: Any = _shown(p.x)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.imshow(p.amap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(p.title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


register_explainer(
    Explainer(
        kind="image",
        method="Grad-CAM (captum LayerGradCam)",
        attribute=grad_cam,
        draw=draw_overlays,
        note="red: the regions whose features raised the score of the predicted class "
        "(Grad-CAM of the model's last convolutional block, scaled to its maximum per image)",
    )
)

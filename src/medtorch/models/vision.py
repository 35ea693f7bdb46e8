"""torchvision image backbones (ResNet-18/34/50) with a new classification head.

``resnet2d`` builds ``torchvision.models.<arch>`` and replaces its last layer with one for
``n_classes``. Two things a clinical image task needs that torchvision leaves to the user:

- **Small images** (MedMNIST's 28 x 28): the ImageNet stem (7 x 7 stride-2 convolution and a
  max-pool) shrinks a 28-pixel image to 7 pixels before the first block. ``small_input``
  swaps in a 3 x 3 stride-1 stem without the pool (the CIFAR ResNet, as MedMNIST's own
  28 x 28 baselines do); ``auto`` does so below 64 pixels.
- **Pretrained weights** (transfer learning, as Esteva 2017 and Gulshan 2016 did):
  ``pretrained: imagenet`` loads torchvision's ImageNet weights through its own cache
  (``$TORCH_HOME/hub/checkpoints``), downloading them when absent. Offline and uncached is a
  one-line error saying where to put the file. The new stem of ``small_input`` and the head
  start from random weights; a different channel count averages the first convolution's
  weights over RGB.
"""

from __future__ import annotations

import logging
import urllib.error
from typing import Any

import torch
from torch import nn

from medtorch.errors import ConfigError, fmt
from medtorch.models.registry import ModelExample, register_model

log = logging.getLogger("medtorch")

ARCHS = ("resnet18", "resnet34", "resnet50")
WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    weights = getattr(tvm, WEIGHTS[arch]).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise ConfigError(
            f"expected the ImageNet weights of {arch} (cached or downloadable), got "
            f"{type(exc).__name__}: {str(exc)[:120]} in model.params.pretrained; put "
            f"{weights.url.rsplit('/', 1)[-1]} from {weights.url} in $TORCH_HOME/hub/checkpoints "
            "(default ~/.cache/torch/hub/checkpoints) or set model.params.pretrained=none"
        ) from None


@register_model(
    "resnet2d",
    # the ImageNet stem keeps the generic tests fast; tests/test_images.py checks the small stem
    example=ModelExample(shapes=((3, 32, 32),), params={"arch": "resnet18", "small_input": False}),
)
def resnet2d(
    n_inputs: int,
    n_classes: int,
    arch: str = "resnet18",
    pretrained: str = "none",
    small_input: bool | str = "auto",
    image_size: int | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """torchvision ResNet-18/34/50 on (N, C, H, W) images; small-image stem; ImageNet weights."""
    import torchvision.models as tvm

    if arch not in ARCHS:
        raise ConfigError(fmt(f"one of {list(ARCHS)}", arch, "model.params.arch",
                              "pick a ResNet from that list"))  # fmt: skip
    if pretrained not in ("none", "imagenet"):
        raise ConfigError(fmt("none or imagenet", pretrained, "model.params.pretrained",
                              "imagenet loads torchvision's weights (cache or download)"))  # fmt: skip
    if small_input not in (True, False, "auto"):
        raise ConfigError(fmt("true, false or auto", small_input, "model.params.small_input",
                              "auto: the small-image stem below 64 pixels"))  # fmt: skip
    small = small_input is True or (small_input == "auto" and (image_size or 224) < 64)
    net: Any = getattr(tvm, arch)(weights=None)
    if n_inputs != 3:
        net.conv1 = nn.Conv2d(n_inputs, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained == "imagenet":
        state = _imagenet_state(arch)
        if n_inputs != 3:  # e.g. grey-scale: the mean over RGB keeps the filters' response
            w = state["conv1.weight"]
            state["conv1.weight"] = w.mean(1, keepdim=True).repeat(1, n_inputs, 1, 1)
        net.load_state_dict(state)
        log.info("%s: ImageNet weights loaded (torchvision %s)", arch, WEIGHTS[arch])
    if small:
        net.conv1 = nn.Conv2d(n_inputs, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    head = nn.Linear(net.fc.in_features, n_classes)
    net.fc = nn.Sequential(nn.Dropout(dropout), head) if dropout > 0 else head
    return net

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
  start from random weights; for another channel count the first convolution's RGB
  filters are averaged and rescaled (:func:`adapt_rgb_filters`). ``weights: FILE`` loads any file of this architecture (safetensors or
  a state_dict read with ``weights_only``; a medtorch run folder), for example a backbone
  pretrained on another of our datasets (:mod:`medtorch.models.pretrained`).

Transfer learning needs two more things, both here so that ``trainer.finetune`` and the
reports stay generic: ``finetune_groups()`` names the layer groups (stem, layer1..layer4,
head) for staged unfreezing and discriminative rates, and ``cam_layer`` is the last
convolutional stage (``layer4``), where Grad-CAM looks. A pretrained backbone normalises its
own inputs with ImageNet's mean and sd (``input_norm: auto``), so its recipe keeps images in
[0, 1] (``preprocess.normalize: none``) and predicting from a PNG needs nothing else.

**Patient metadata beside the image** (``n_meta`` > 0, set from a task's ``meta`` input,
e.g. ``ham10000_dx`` with ``metadata_features: true``): a small MLP (:class:`MetaBranch`) reads the
tabular features and its output is joined to the backbone's pooled image features before
the classifier, the late fusion of the ISIC metadata models (Gessert et al. 2020;
Pacheco & Krohling 2021). The model is then called ``model(x, meta)``; the branch trains
with the new head (finetune group ``head``) and starts fresh when weights are loaded.
"""

from __future__ import annotations

import logging
import urllib.error
from typing import Any

import torch
from torch import nn

from medtorch.errors import ConfigError, fmt
from medtorch.models.pretrained import load_into, read_state_file
from medtorch.models.registry import ModelExample, register_model

log = logging.getLogger("medtorch")

ARCHS = ("resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics
IMAGENET_SD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("auto", "imagenet", "none")
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


def adapt_rgb_filters(w: torch.Tensor, channels: int) -> torch.Tensor:
    """First-layer RGB filters (O, 3, k, k) for ``channels`` inputs: the mean over RGB,
    repeated and scaled by 3 / channels, so an image with the same value in every channel
    gives the response its RGB copy gave (for one channel: the sum over RGB, as timm does)."""
    return w.mean(1, keepdim=True).repeat(1, channels, 1, 1) * (3.0 / channels)


class InputNorm(nn.Module):
    """Fixed per-channel normalisation (x - mean) / sd of images in [0, 1]: the statistics
    a pretrained backbone saw. Buffers are not saved in the state_dict (they are constants)."""

    def __init__(self, mean: tuple[float, ...], sd: tuple[float, ...], channels: int) -> None:
        super().__init__()
        m = torch.tensor(mean).mean() if channels != len(mean) else torch.tensor(mean)
        d = torch.tensor(sd).mean() if channels != len(sd) else torch.tensor(sd)
        self.register_buffer("mean", m.reshape(-1, 1, 1).expand(channels, 1, 1).clone(), False)
        self.register_buffer("sd", d.reshape(-1, 1, 1).expand(channels, 1, 1).clone(), False)

    mean: torch.Tensor
    sd: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.sd


def input_norm_for(input_norm: str, pretrained: bool, channels: int,
                   mean: tuple[float, ...], sd: tuple[float, ...]) -> nn.Module | None:  # fmt: skip
    """The backbone's own input normalisation: on for ``imagenet``, or ``auto`` with
    pretrained weights; None (no op) otherwise."""
    if input_norm not in INPUT_NORMS:
        raise ConfigError(fmt(f"one of {list(INPUT_NORMS)}", input_norm, "model.params.input_norm",
                              "auto: the backbone's ImageNet statistics when it is pretrained"))  # fmt: skip
    if input_norm == "imagenet" or (input_norm == "auto" and pretrained):
        return InputNorm(mean, sd, channels)
    return None


def check_start(pretrained: str, weights: str | None, imagenet_hint: str) -> None:
    """``pretrained`` is none or imagenet, and not given together with ``weights``."""
    if pretrained not in ("none", "imagenet"):
        raise ConfigError(fmt("none or imagenet", pretrained, "model.params.pretrained",
                              imagenet_hint))  # fmt: skip
    if pretrained != "none" and weights is not None:
        raise ConfigError(fmt("pretrained or weights, not both", f"pretrained={pretrained}, "
                              f"weights={weights}", "model.params", "keep one of the two"))  # fmt: skip


def without_starting_weights(params: dict[str, Any]) -> dict[str, Any]:
    """A trained run's params that rebuild its network without reading the ImageNet or
    weights file it started from (the run's checkpoint replaces them), keeping the input
    normalisation those weights switched on."""
    started = params.get("pretrained", "none") != "none" or params.get("weights") is not None
    norm = params.get("input_norm", "auto")
    if norm == "auto":
        norm = "imagenet" if started else "none"
    return {**params, "pretrained": "none", "weights": None, "input_norm": norm}


class MetaBranch(nn.Module):
    """Tabular features (N, n_meta) -> (N, hidden): Linear, ReLU, dropout. Its output is
    concatenated with the image features, so the classifier weighs both."""

    def __init__(self, n_meta: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_meta, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.out_features = hidden

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        return self.net(meta)


def meta_branch(n_meta: int, meta_hidden: int, dropout: float) -> MetaBranch | None:
    """The metadata branch for ``n_meta`` features (None without them), checked."""
    if not isinstance(meta_hidden, int) or isinstance(meta_hidden, bool) or meta_hidden < 1:
        raise ConfigError(fmt("a positive int", meta_hidden, "model.params.meta_hidden",
                              "the width of the metadata MLP, e.g. 32"))  # fmt: skip
    return MetaBranch(int(n_meta), meta_hidden, dropout) if n_meta else None


def fuse(features: torch.Tensor, branch: MetaBranch, meta: torch.Tensor | None,
         model: str) -> torch.Tensor:  # fmt: skip
    """Pooled image features joined to the metadata branch's output."""
    if meta is None:
        raise ConfigError(fmt("the metadata input (model(x, meta))", "the image alone", model,
                              "this network was trained with patient metadata: pass it"))  # fmt: skip
    return torch.cat([features, branch(meta.to(features.dtype))], dim=1)


def head_group(head: nn.Module, branch: MetaBranch | None) -> list[nn.Parameter]:
    """The finetune group ``head``: the new classifier and the metadata branch, if any."""
    return [*head.parameters(), *(branch.parameters() if branch is not None else [])]


def _torchvision_resnet_class() -> Any:
    import torchvision.models as tvm

    class ResNet2d(tvm.ResNet):
        """torchvision's ResNet with named layer groups, a Grad-CAM layer and an optional
        input normalisation (same state_dict keys as torchvision's)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.input_norm: nn.Module | None = None
            self.meta: MetaBranch | None = None

        def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
            if self.input_norm is not None:
                x = self.input_norm(x)
            if self.meta is None:
                return super().forward(x)
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(fuse(torch.flatten(self.avgpool(x), 1), self.meta, meta, "resnet2d"))

        @property
        def cam_layer(self) -> nn.Module:
            return self.layer4

        def finetune_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
            stem = [*self.conv1.parameters(), *self.bn1.parameters()]
            groups = [("stem", stem)]
            groups += [
                (f"layer{i}", list(getattr(self, f"layer{i}").parameters())) for i in range(1, 5)
            ]
            return [*groups, ("head", head_group(self.fc, self.meta))]

    return ResNet2d


def _build_resnet(arch: str) -> Any:
    """torchvision's ``resnet18/34/50(weights=None)``, as the ResNet2d subclass."""
    import torchvision.models.resnet as tvr

    spec = {"resnet18": (tvr.BasicBlock, [2, 2, 2, 2]), "resnet34": (tvr.BasicBlock, [3, 4, 6, 3]),
            "resnet50": (tvr.Bottleneck, [3, 4, 6, 3])}  # fmt: skip
    block, layers = spec[arch]
    return _torchvision_resnet_class()(block, layers)


@register_model(
    "resnet2d",
    # the ImageNet stem keeps the generic tests fast; tests/test_images.py checks the small stem
    example=ModelExample(shapes=((3, 32, 32),), params={"arch": "resnet18", "small_input": False}),
    restore=without_starting_weights,
)
def resnet2d(
    n_inputs: int,
    n_classes: int,
    arch: str = "resnet18",
    pretrained: str = "none",
    weights: str | None = None,
    small_input: bool | str = "auto",
    image_size: int | None = None,
    dropout: float = 0.0,
    input_norm: str = "auto",
    n_meta: int = 0,
    meta_hidden: int = 32,
) -> nn.Module:
    """torchvision ResNet-18/34/50 on (N, C, H, W) images; small-image stem; ImageNet weights
    (``pretrained: imagenet``) or a weights file / run folder (``weights``); with ``n_meta``
    metadata features, ``model(x, meta)`` (:class:`MetaBranch`)."""
    if arch not in ARCHS:
        raise ConfigError(fmt(f"one of {list(ARCHS)}", arch, "model.params.arch",
                              "pick a ResNet from that list"))  # fmt: skip
    check_start(pretrained, weights, "imagenet loads torchvision's weights (cache or download)")
    if small_input not in (True, False, "auto"):
        raise ConfigError(fmt("true, false or auto", small_input, "model.params.small_input",
                              "auto: the small-image stem below 64 pixels"))  # fmt: skip
    small = small_input is True or (small_input == "auto" and (image_size or 224) < 64)
    net: Any = _build_resnet(arch)
    if n_inputs != 3:
        net.conv1 = nn.Conv2d(n_inputs, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained == "imagenet":
        state = _imagenet_state(arch)
        if n_inputs != 3:  # e.g. grey-scale: a grey image keeps its RGB copy's response
            state["conv1.weight"] = adapt_rgb_filters(state["conv1.weight"], n_inputs)
        net.load_state_dict(state)
        log.info("%s: ImageNet weights loaded (torchvision %s)", arch, WEIGHTS[arch])
    if small:
        net.conv1 = nn.Conv2d(n_inputs, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.meta = meta_branch(n_meta, meta_hidden, dropout)
    width = net.fc.in_features + (net.meta.out_features if net.meta is not None else 0)
    head = nn.Linear(width, n_classes)
    net.fc = nn.Sequential(nn.Dropout(dropout), head) if dropout > 0 else head
    if weights is not None:
        load_into(net, read_state_file(weights), str(weights), head_prefixes=("fc.", "meta."))
    net.input_norm = input_norm_for(input_norm, pretrained != "none" or weights is not None,
                                    n_inputs, IMAGENET_MEAN, IMAGENET_SD)  # fmt: skip
    return net

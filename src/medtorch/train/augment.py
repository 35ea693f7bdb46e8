"""Batch-level augmentation of signals (N, C, T) and images (N, C, H, W) on the trainer's
fast path.

Applied to the main input ``x`` of training batches only, as a few vectorised tensor ops
(no per-sample Python), drawing from torch's global RNG so checkpoints resume exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from medtorch.config import AugmentConfig
from medtorch.errors import ConfigError, fmt

# torchvision.transforms.v2 classes a recipe may name: geometric and photometric
# augmentations of a float image in [0, 1] that keep its size (RandomResizedCrop and
# RandomCrop are given the image's own size when no size is set)
IMAGE_TRANSFORMS = (
    "RandomResizedCrop",
    "RandomCrop",
    "RandomRotation",
    "RandomAffine",
    "RandomPerspective",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "ColorJitter",
    "RandomGrayscale",
    "GaussianBlur",
    "GaussianNoise",
    "RandomAutocontrast",
    "RandomAdjustSharpness",
    "RandomErasing",
    "ElasticTransform",
)
_SIZED = ("RandomResizedCrop", "RandomCrop")


def augment_signals(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Return an augmented copy of a (N, C, T) batch.

    >>> from medtorch.config import AugmentConfig
    >>> augment_signals(torch.ones(2, 1, 4), AugmentConfig()).shape
    torch.Size([2, 1, 4])
    """
    if x.ndim == 4 and cfg.dihedral:
        return augment_dihedral(x)
    if x.ndim != 3 or not cfg.enabled:
        return x
    n, device = x.shape[0], x.device
    if cfg.reverse_time:  # spectra are unchanged by time reversal
        flip = torch.rand(n, device=device) < 0.5
        x = torch.where(flip[:, None, None], x.flip(-1), x)
    if cfg.flip_sign:  # electrode polarity is arbitrary
        sign = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
        x = x * sign[:, None, None]
    if cfg.gain > 0:
        scale = 1.0 + (torch.rand(n, device=device) * 2 - 1) * cfg.gain
        x = x * scale[:, None, None]
    if cfg.time_shift > 0:  # circular shift by up to +-time_shift samples
        t = x.shape[-1]
        shift = torch.randint(-cfg.time_shift, cfg.time_shift + 1, (n,), device=device)
        idx = (torch.arange(t, device=device)[None, :] - shift[:, None]) % t  # (N, T)
        x = x.gather(-1, idx[:, None, :].expand(-1, x.shape[1], -1))
    if cfg.noise_std > 0:  # relative to each sample's own standard deviation
        sd = x.std(dim=-1, keepdim=True)
        x = x + torch.randn_like(x) * sd * cfg.noise_std
    return x


def augment_dihedral(x: torch.Tensor) -> torch.Tensor:
    """Each image of a (N, C, H, W) batch under a random symmetry of the square: flipped
    left-right and / or top-bottom with probability 1/2 each, and (square images only)
    transposed with probability 1/2.

    >>> augment_dihedral(torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 3, 4, 4])
    """
    n, device = x.shape[0], x.device
    for dims in ((-1,), (-2,)):
        pick = torch.rand(n, device=device) < 0.5
        x = torch.where(pick[:, None, None, None], x.flip(dims), x)
    if x.shape[-1] == x.shape[-2]:
        pick = torch.rand(n, device=device) < 0.5
        x = torch.where(pick[:, None, None, None], x.transpose(-1, -2), x)
    return x


def build_image_transforms(specs: list[dict[str, dict[str, Any]]], size: tuple[int, int]) -> Any:
    """``trainer.augment.transforms`` as one torchvision v2 ``Compose`` for (C, H, W) images
    of ``size``; an unknown name or a bad parameter is a one-line ConfigError."""
    from torchvision.transforms import v2

    steps = []
    for i, spec in enumerate(specs):
        ((name, params),) = spec.items()
        where = f"trainer.augment.transforms[{i}].{name}"
        if name not in IMAGE_TRANSFORMS:
            raise ConfigError(fmt(f"one of {list(IMAGE_TRANSFORMS)}", name, where,
                                  "name a torchvision.transforms.v2 augmentation from that list"))  # fmt: skip
        kwargs = dict(params or {})
        if name in _SIZED:
            kwargs.setdefault("size", list(size))
        if name == "RandomResizedCrop":
            kwargs.setdefault("antialias", True)
        try:
            steps.append(getattr(v2, name)(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(fmt(f"valid parameters of torchvision's v2.{name}", kwargs, where,
                                  str(exc).splitlines()[0][:160])) from None  # fmt: skip
    return v2.Compose(steps)


class ImageTransforms:
    """Per-image torchvision v2 augmentation of a (N, C, H, W) batch (each image draws its
    own parameters; a batched call would give the whole batch one crop and one rotation).

    Draws from torch's global RNG, so a resumed run continues the same sequence."""

    def __init__(self, specs: list[dict[str, dict[str, Any]]]) -> None:
        self.specs = specs
        self.compose: Any = None
        self.size: tuple[int, int] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if self.compose is None or self.size != size:
            self.compose, self.size = build_image_transforms(self.specs, size), size
        return torch.stack([self.compose(img) for img in x])

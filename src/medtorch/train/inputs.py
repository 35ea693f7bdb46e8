"""Which model inputs may be augmented, and how: declared, not guessed from a tensor's rank.

``input_kinds`` maps each input name to what it holds:

    signal    (N, C, T) waveforms: time reversal, sign flip, gain, shift, noise; TTA views
    image     (N, C, H, W): flips and transposes (``augment.dihedral``), torchvision v2
              transforms (``augment.transforms``); TTA: the 8 symmetries of the square
    features  (N, F) tabular values: left alone
    codes     integer indices (diagnosis / procedure codes for embeddings): never touched
    times     time stamps or gaps: left alone
    values    measurements paired with codes or times: left alone

Without a declaration the old rule applies to the first input only (rank 3: signal, rank 4:
image, else features) and every other input is left alone, so existing callers see the same
batches; an integer first input is ``codes`` whatever its rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch

from medtorch.config import AugmentConfig
from medtorch.errors import ConfigError, fmt
from medtorch.train.augment import ImageTransforms, augment_dihedral, augment_signals

KINDS = ("signal", "image", "features", "codes", "times", "values")


def default_kinds(inputs: Mapping[str, np.ndarray]) -> dict[str, str]:
    """The kinds the trainer assumed before inputs were declared (see the module doc)."""
    kinds = dict.fromkeys(inputs, "features")
    if not kinds:
        return kinds
    first = next(iter(inputs))  # the old rule looked at the first input only
    x = np.asarray(inputs[first])
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        kinds[first] = "codes"
    elif x.ndim == 3:
        kinds[first] = "signal"
    elif x.ndim == 4:
        kinds[first] = "image"
    return kinds


def resolve_kinds(
    declared: Mapping[str, str] | None, inputs: Mapping[str, np.ndarray]
) -> dict[str, str]:
    """Declared kinds (checked against the inputs), else :func:`default_kinds`."""
    if declared is None:
        return default_kinds(inputs)
    for name, kind in declared.items():
        if kind not in KINDS:
            raise ConfigError(fmt(f"one of {list(KINDS)}", kind, f"input_kinds[{name!r}]",
                                  "declare what the input holds"))  # fmt: skip
    unknown = sorted(set(declared) - set(inputs))
    if unknown:
        raise ConfigError(fmt(f"input names among {list(inputs)}", unknown, "input_kinds",
                              "declare the dataset's own input names"))  # fmt: skip
    kinds = {name: declared.get(name, "features") for name in inputs}
    for name, kind in kinds.items():
        rank = {"signal": 3, "image": 4}.get(kind)
        arr = np.asarray(inputs[name])
        if rank is not None and arr.ndim != rank:
            raise ConfigError(fmt(f"a rank-{rank} array for a {kind} input", tuple(arr.shape),
                                  f"input_kinds[{name!r}]", "fix the declaration"))  # fmt: skip
        if rank is not None and not np.issubdtype(arr.dtype, np.floating):
            raise ConfigError(fmt(f"floating values for a {kind} input", str(arr.dtype),
                                  f"input_kinds[{name!r}]", "declare integer indices as codes"))  # fmt: skip
    return kinds


def augment_batch(
    batch: list[torch.Tensor], kinds: list[str], cfg: AugmentConfig
) -> list[torch.Tensor]:
    """Augment the signal and image inputs of one training batch (others unchanged)."""
    out = list(batch)
    for i, kind in enumerate(kinds):
        if kind == "signal":
            out[i] = augment_signals(out[i], cfg)
        elif kind == "image":
            if cfg.transforms:
                out[i] = _transforms_for(cfg)(out[i])
            if cfg.dihedral:
                out[i] = augment_dihedral(out[i])
    return out


_TRANSFORMS: dict[int, ImageTransforms] = {}


def _transforms_for(cfg: AugmentConfig) -> ImageTransforms:
    """The v2 pipeline of a config, built once per config object."""
    t = _TRANSFORMS.get(id(cfg))
    if t is None or t.specs is not cfg.transforms:
        t = _TRANSFORMS[id(cfg)] = ImageTransforms(cfg.transforms)
    return t


def dihedral_views(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The 8 symmetries of a square image batch (N, C, H, W): 4 flips, each also transposed
    (the 4 flips only when H != W), made one at a time."""
    square = x.shape[-1] == x.shape[-2]
    for dims in ((), (-1,), (-2,), (-1, -2)):
        yield x.flip(dims) if dims else x
    if square:
        for dims in ((), (-1,), (-2,), (-1, -2)):
            yield (x.flip(dims) if dims else x).transpose(-1, -2)


def _signal_views(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """A signal batch as is, time-reversed, sign-flipped and both, made one at a time."""
    yield x
    yield x.flip(-1)
    yield -x
    yield -x.flip(-1)


def tta_views(xs: list[torch.Tensor], kinds: list[str]) -> Iterator[list[torch.Tensor]]:
    """Test-time views of the first signal or image input (the others unchanged): a signal
    as is, time-reversed, sign-flipped and both; an image under the 8 symmetries of the
    square (:func:`dihedral_views`); just the inputs when there is neither. The views are
    made one at a time, so averaging them holds one copy of the inputs, not eight."""
    main = [i for i, k in enumerate(kinds) if k in ("signal", "image")]
    if not main:
        yield xs
        return
    i, x = main[0], xs[main[0]]
    for v in dihedral_views(x) if kinds[i] == "image" else _signal_views(x):
        yield [*xs[:i], v, *xs[i + 1 :]]

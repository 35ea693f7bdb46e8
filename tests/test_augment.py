"""Batch augmentation keeps shapes and statistics it promises to keep."""

from __future__ import annotations

import torch

from medtorch.config import AugmentConfig
from medtorch.train.augment import augment_signals


def _x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(64, 2, 50)


def test_disabled_is_identity() -> None:
    x = _x()
    assert augment_signals(x, AugmentConfig()) is x
    assert augment_signals(torch.randn(4, 7), AugmentConfig(gain=0.5)).shape == (
        4,
        7,
    )  # vectors untouched


def test_shift_reverse_and_sign_keep_the_multiset_of_abs_values() -> None:
    x = _x()
    out = augment_signals(x, AugmentConfig(reverse_time=True, flip_sign=True, time_shift=10))
    assert out.shape == x.shape
    assert torch.equal(out.abs().sort(-1).values, x.abs().sort(-1).values)
    assert not torch.equal(out, x)


def test_gain_stays_in_range_and_noise_is_relative() -> None:
    x = _x()
    out = augment_signals(x, AugmentConfig(gain=0.2))
    ratio = out / x
    assert ratio.min() >= 0.8 - 1e-6 and ratio.max() <= 1.2 + 1e-6
    noisy = augment_signals(x, AugmentConfig(noise_std=0.1))
    rel = (noisy - x).std() / x.std()
    assert 0.05 < float(rel) < 0.2


def test_same_seed_same_augmentation() -> None:
    cfg = AugmentConfig(reverse_time=True, flip_sign=True, gain=0.1, time_shift=5, noise_std=0.05)
    x = _x()
    torch.manual_seed(3)
    a = augment_signals(x, cfg)
    torch.manual_seed(3)
    b = augment_signals(x, cfg)
    c = augment_signals(x, cfg)  # the RNG moved on: a different draw
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dihedral_maps_each_image_to_one_of_its_eight_symmetries() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 3, 5, 5)
    out = augment_signals(x, AugmentConfig(dihedral=True))
    assert out.shape == x.shape
    seen = set()
    for a, b in zip(x, out):
        views = [a, a.flip(-1), a.flip(-2), a.flip(-1).flip(-2)]
        views += [v.transpose(-1, -2) for v in views]
        hits = [k for k, v in enumerate(views) if torch.equal(v, b)]
        assert len(hits) == 1  # one symmetry, not a blend (random images have no symmetry)
        seen.add(hits[0])
    assert seen == set(range(8))  # all eight occur in 200 draws
    signals = torch.randn(4, 2, 30)
    assert augment_signals(signals, AugmentConfig(dihedral=True)) is signals  # images only

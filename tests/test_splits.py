"""Splits: lab sizes, grouped splits never leak, k-fold, audit, empty partitions, normaliser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medtorch.config import SplitConfig
from medtorch.data import splits
from medtorch.data.dataset import ArrayDataset
from medtorch.data.preprocess import Normalizer, fit_normalizer
from medtorch.data.splits import (
    audit_leakage,
    describe_split,
    make_split,
    register_protocol,
    write_split,
)
from medtorch.data.tasks import build_task
from medtorch.errors import ConfigError, SplitError


@pytest.fixture(scope="module")
def seizure() -> ArrayDataset:
    return build_task("seizure_5class", None, {})


def _toy(n_groups: int = 40, per_group: int = 5, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per_group)
    y = np.repeat(rng.integers(0, 2, n_groups), per_group)
    x = rng.normal(size=(len(g), 3)).astype(np.float32)
    return ArrayDataset({"x": x}, y, g.astype(str), ["a", "b"], meta={"group_unit": "patient"})


def _check_partition(split: dict[str, np.ndarray], n: int) -> None:
    allidx = np.concatenate([split[k] for k in ("train", "valid", "test")])
    assert len(allidx) == n and len(np.unique(allidx)) == n
    for v in split.values():
        assert v.dtype == np.int64 and np.all(np.diff(v) > 0)


def test_random_split_reproduces_lab_sizes(seizure: ArrayDataset) -> None:
    split = make_split(seizure, SplitConfig(method="random"))
    assert [len(split[k]) for k in ("train", "valid", "test")] == [7360, 1840, 2300]
    _check_partition(split, 11500)
    again = make_split(seizure, SplitConfig(method="random"))
    assert all(np.array_equal(split[k], again[k]) for k in split)
    info = describe_split(seizure, split, SplitConfig(method="random"))
    assert info["leakage_audit"].startswith("not applicable")
    assert (
        "of 500 test recordings" in info["leakage_note"]
        or "test recordings" in info["leakage_note"]
    )
    assert info["group_overlap"]["train-test"] > 400  # rows split: most recordings leak


def test_stratified_keeps_class_balance(seizure: ArrayDataset) -> None:
    split = make_split(seizure, SplitConfig(method="stratified"))
    assert np.bincount(seizure.y[split["test"]]).tolist() == [460] * 5


def test_by_recording_never_leaks(seizure: ArrayDataset, tmp_path: Path) -> None:
    cfg = SplitConfig(method="by_recording")
    split = make_split(seizure, cfg)
    _check_partition(split, 11500)
    sets = [set(seizure.groups[split[k]]) for k in ("train", "valid", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [len(s) for s in sets] == [320, 80, 100]  # ratios apply to the 500 recordings
    info = describe_split(seizure, split, cfg)
    assert info["leakage_audit"] == "passed" and info["grouped"]
    assert set(info["group_overlap"].values()) == {0}
    assert info["partitions"]["test"]["n"] == 2300 and info["partitions"]["test"]["n_groups"] == 100
    write_split(tmp_path / "splits.json", info)
    back = json.loads((tmp_path / "splits.json").read_text())
    assert len(back["partitions"]["valid"]["sample_ids"]) == len(split["valid"])


def test_grouped_kfold_disjoint_and_covering() -> None:
    ds = _toy()
    tests = []
    for fold in range(5):
        split = make_split(ds, SplitConfig(method="grouped_kfold", n_folds=5, fold=fold))
        _check_partition(split, len(ds))
        audit_leakage(ds.groups, split)
        tests.append(split["test"])
    allt = np.concatenate(tests)
    assert len(allt) == len(ds) and len(np.unique(allt)) == len(ds)
    with pytest.raises(ConfigError, match=r"split\.fold"):
        make_split(ds, SplitConfig(method="grouped_kfold", n_folds=5, fold=5))


def test_audit_catches_planted_overlap() -> None:
    groups = np.array(["p1", "p1", "p2", "p3", "p4", "p4"])
    split = {"train": np.array([0, 2]), "valid": np.array([3]), "test": np.array([1, 4, 5])}
    with pytest.raises(SplitError, match=r"train-test: p1"):
        audit_leakage(groups, split)
    ok = {"train": np.array([0, 1, 2]), "valid": np.array([3]), "test": np.array([4, 5])}
    assert audit_leakage(groups, ok) == {"train-valid": 0, "train-test": 0, "valid-test": 0}


def test_empty_partition_is_a_split_error() -> None:
    ds = _toy()
    with pytest.raises(SplitError, match=r"'valid', got 0 rows.*split\.ratios; give valid"):
        make_split(ds, SplitConfig(method="by_patient", ratios=(0.8, 0.0, 0.2)))
    with pytest.raises(SplitError, match="'test'"):
        make_split(ds, SplitConfig(method="random", ratios=(0.9, 0.1, 0.0)))


def test_protocol_registry() -> None:
    @register_protocol("toy_first_half")
    def _toy_protocol(ds: ArrayDataset, cfg: SplitConfig) -> dict[str, np.ndarray]:
        n = len(ds)
        return {
            "train": np.arange(0, n // 2),
            "valid": np.arange(n // 2, 3 * n // 4),
            "test": np.arange(3 * n // 4, n),
        }

    ds = _toy()
    cfg = SplitConfig(method="protocol", protocol="toy_first_half")
    split = make_split(ds, cfg)
    assert describe_split(ds, split, cfg)["leakage_audit"] == "passed"
    with pytest.raises(ConfigError, match=r"split\.protocol.*toy_first_half"):
        make_split(ds, SplitConfig(method="protocol", protocol="toy_first_hal"))
    splits._PROTOCOLS.pop("toy_first_half")  # keep the global registry clean for other tests


def test_normaliser_fits_on_train_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 2, 30)).astype(np.float32)
    x[80:] += 100.0  # the held-out rows are shifted; a fit that saw them would be off
    norm = fit_normalizer("standard", x[:80])
    assert norm.mean is not None and np.all(np.abs(norm.mean) < 0.5)
    z = norm.transform(x[:80])
    assert np.allclose(z.mean(axis=(0, 2)), 0, atol=1e-5) and np.allclose(
        z.std(axis=(0, 2)), 1, atol=1e-4
    )
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert np.allclose(again.transform(x), norm.transform(x))
    flat = fit_normalizer("standard", np.array([[1.0, 2.0], [1.0, 4.0]]))
    assert flat.sd is not None and flat.sd.tolist() == [1.0, 1.0]  # zero sd -> 1
    ps = fit_normalizer("per_sample", x).transform(x)
    assert np.allclose(ps.mean(axis=(1, 2)), 0, atol=1e-4)
    assert abs(float(fit_normalizer("global", x[:80]).transform(x[:80]).std()) - 1) < 1e-4
    with pytest.raises(ConfigError, match=r"preprocess\.normalize"):
        fit_normalizer("minmax", x)

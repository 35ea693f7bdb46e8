"""Multi-label tasks (e.g. next-visit diagnosis categories): dataset, splits and metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.splits import describe_split, make_split
from medtorch.errors import DataError, MedtorchError
from medtorch.metrics.multilabel import multilabel_report, recall_at_k


def _data(n: int = 200, k: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(np.float32)
    p = np.clip(0.6 * y + 0.5 * rng.random((n, k)), 0, 1)
    return y, p


def test_recall_at_k_by_hand() -> None:
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=float)
    p = np.array([[0.9, 0.1, 0.8, 0.0], [0.5, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]])
    # sample 0: top-2 = {0, 2}, 1 of 2 true; sample 1: top-2 = {0, 1}, 0 of 1; sample 2 has none
    assert recall_at_k(y, p, 2) == pytest.approx(0.25)
    assert recall_at_k(y, p, 4) == pytest.approx(1.0)
    w = np.array([3.0, 1.0, 5.0])  # a resample drawing sample 0 three times
    assert recall_at_k(y, p, 2, w) == pytest.approx((3 * 0.5 + 0) / 4)


def test_curves_match_scikit_learn_and_cis_bracket_the_value() -> None:
    y, p = _data()
    y[:, 5] = 0  # a label without positives: left out of the macro means
    r = multilabel_report(y, p, list("abcdef"), groups=np.arange(200) // 4, n_bootstrap=200)
    o = r["overall"]
    assert o["micro_auprc"]["value"] == pytest.approx(
        skm.average_precision_score(y.ravel(), p.ravel())
    )
    assert o["micro_auroc"]["value"] == pytest.approx(skm.roc_auc_score(y.ravel(), p.ravel()))
    macro = np.mean([skm.average_precision_score(y[:, j], p[:, j]) for j in range(5)])
    assert o["macro_auprc"]["value"] == pytest.approx(macro)
    for m in ("recall@10", "recall@20", "micro_auprc", "macro_auroc"):
        lo, hi = o[m]["ci"]
        assert lo <= o[m]["value"] <= hi
    assert r["ci_method"] == "bootstrap over groups (n=200)" and r["n_groups"] == 50
    assert r["label_positives"]["f"] == 0


def test_bad_shapes_are_one_line() -> None:
    y, p = _data()
    with pytest.raises(MedtorchError, match="shape") as err:
        multilabel_report(y, p[:, :3], list("abcdef"))
    assert "\n" not in str(err.value)
    with pytest.raises(MedtorchError, match="0/1 labels"):
        multilabel_report(y * 2, p, list("abcdef"))


def test_multilabel_dataset_splits_and_counts() -> None:
    y, _ = _data(n=120)
    groups = np.repeat(np.arange(40), 3).astype(str)
    ds = ArrayDataset({"x": np.zeros((120, 4), np.float32)}, y, groups, list("abcdef"))
    assert ds.multilabel and ds.strata is None
    assert ds.class_counts() == {c: int(v) for c, v in zip("abcdef", y.sum(0))}
    split = make_split(ds, SplitConfig(method="by_patient", seed=1))
    parts = [set(groups[v]) for v in split.values()]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    info = describe_split(ds, split, SplitConfig(method="by_patient", seed=1))
    assert sum(info["partitions"][p]["class_counts"]["a"] for p in split) == int(y[:, 0].sum())
    sub = ds.subset(split["test"])
    assert sub.multilabel and sub.y.shape[1] == 6
    with pytest.raises(DataError, match="0/1 matrix"):
        ArrayDataset({"x": np.zeros((120, 4))}, y[:, :3], groups, list("abcdef"))

"""Metrics: point values against scikit-learn, degenerate inputs, bootstrap, validation, AAMI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from medtorch.errors import MedtorchError
from medtorch.metrics import aami_report, evaluate, expected_calibration_error
from medtorch.metrics import bootstrap as bs
from medtorch.metrics.classification import _make_stat_fn


def _data(seed: int, n: int, k: int, signal: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + signal * np.eye(k)[y]
    if seed % 2:  # ties in scores exercise the tie handling of AUROC / AP
        logits = np.round(logits, 1)
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _sklearn(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    k = p.shape[1]
    pred = p.argmax(axis=1)
    labels = list(range(k))
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "cohen_kappa": skm.cohen_kappa_score(y, pred),
        "log_loss": skm.log_loss(y, p, labels=labels),
    }
    if k == 2:
        out["auroc"] = skm.roc_auc_score(y, p[:, 1])
        out["auprc"] = skm.average_precision_score(y, p[:, 1])
        out["brier"] = np.mean((p[:, 1] - y) ** 2)
    else:
        out["auroc"] = skm.roc_auc_score(y, p, multi_class="ovr")
        out["auprc"] = skm.average_precision_score(np.eye(k)[y], p, average="macro")
        out["brier"] = np.mean(((p - np.eye(k)[y]) ** 2).sum(axis=1))
    return out


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_values_match_sklearn(k: int, seed: int) -> None:
    y, p = _data(seed, 400, k)
    names = [f"c{i}" for i in range(k)]
    r = evaluate(y, p, names, n_bootstrap=0)
    for name, ref in _sklearn(y, p).items():
        assert r["overall"][name]["value"] == pytest.approx(ref, abs=1e-12), name
    pred = p.argmax(axis=1)
    recall = skm.recall_score(y, pred, average=None)
    precision = skm.precision_score(y, pred, average=None)
    f1 = skm.f1_score(y, pred, average=None)
    for i, c in enumerate(names):
        pc = r["per_class"][c]
        assert pc["sensitivity"]["value"] == pytest.approx(recall[i])
        assert pc["ppv"]["value"] == pytest.approx(precision[i])
        assert pc["f1"]["value"] == pytest.approx(f1[i])
        tn = ((y != i) & (pred != i)).sum()
        assert pc["specificity"]["value"] == pytest.approx(tn / (y != i).sum())
        assert pc["auroc"]["value"] == pytest.approx(skm.roc_auc_score(y == i, p[:, i]))
        assert pc["support"] == int((y == i).sum())
    assert r["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert r["ci_method"].startswith("none")
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("seed", [3, 4])
def test_weighted_kernels_equal_sklearn_on_weighted_data(k: int, seed: int) -> None:
    # one resample with integer weights == the metric on the data with rows repeated
    y, p = _data(seed, 300, k)
    w = np.random.default_rng(seed + 100).integers(0, 4, size=(1, len(y))).astype(float)
    rep = np.repeat(np.arange(len(y)), w[0].astype(int))
    out = _make_stat_fn(y, p, p.argmax(axis=1), k)(w)
    ref = _sklearn(y[rep], p[rep])
    for name in ref:
        assert out[name][0] == pytest.approx(ref[name], abs=1e-9), name
    assert out["ece"][0] == pytest.approx(expected_calibration_error(y[rep], p[rep]))


def test_ece_hand_computed() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.95, 0.05], [0.3, 0.7], [0.25, 0.75], [0.35, 0.65]])
    # bins of width 1/15: 0.95 -> (14/15, 1] alone, gap 0.05; 0.7 and 0.75 share
    # (10/15, 11/15]: gaps 0.3 and 0.25 sum to 0.55; 0.65 wrong -> (9/15, 10/15], gap -0.65
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.55 + 0.65) / 4)
    r = evaluate(y, p, ["a", "b"], n_bootstrap=0)
    assert r["overall"]["ece"]["value"] == pytest.approx(1.25 / 4)


def test_one_class_present_gives_null_with_note() -> None:
    y = np.zeros(50, dtype=int)
    _, p = _data(0, 50, 3)
    r = evaluate(y, p, ["a", "b", "c"], n_bootstrap=100)
    au = r["overall"]["auroc"]
    assert au["value"] is None and au["ci"] is None and "absent" in au["note"]
    assert r["overall"]["auprc"]["value"] is None
    assert r["per_class"]["b"]["sensitivity"]["value"] is None
    assert "no samples" in r["per_class"]["b"]["sensitivity"]["note"]
    assert r["overall"]["accuracy"]["value"] == pytest.approx(float((p.argmax(1) == 0).mean()))
    json.dumps(r, allow_nan=False)


def test_all_equal_scores_and_perfect_predictions() -> None:
    y = np.array([0, 1] * 20)
    flat = np.full((40, 2), 0.5)
    r = evaluate(y, flat, ["neg", "pos"], n_bootstrap=50)
    assert r["overall"]["auroc"]["value"] == pytest.approx(0.5)
    assert r["overall"]["auprc"]["value"] == pytest.approx(0.5)
    assert r["per_class"]["pos"]["ppv"]["value"] is None  # never predicted
    assert r["overall"]["cohen_kappa"]["value"] == pytest.approx(0.0)

    perfect = np.eye(2)[y] * 0.9 + 0.05
    r = evaluate(y, perfect, ["neg", "pos"], n_bootstrap=50)
    for m in ("accuracy", "balanced_accuracy", "auroc", "auprc", "macro_f1", "cohen_kappa"):
        assert r["overall"][m]["value"] == pytest.approx(1.0), m
        assert r["overall"][m]["ci"] == pytest.approx([1.0, 1.0]), m


def test_bootstrap_ci_contains_value_and_is_deterministic() -> None:
    y, p = _data(5, 600, 3)
    groups = np.repeat(np.arange(60), 10)
    a = evaluate(y, p, ["a", "b", "c"], groups=groups, n_bootstrap=300, seed=7)
    b = evaluate(y, p, ["a", "b", "c"], groups=groups, n_bootstrap=300, seed=7)
    c = evaluate(y, p, ["a", "b", "c"], groups=groups, n_bootstrap=300, seed=8)
    assert a == b
    assert a["overall"]["auroc"]["ci"] != c["overall"]["auroc"]["ci"]
    assert a["n_groups"] == 60 and a["ci_method"] == "bootstrap over groups (n=300)"
    for m in ("accuracy", "balanced_accuracy", "auroc", "auprc", "macro_f1", "brier", "log_loss"):
        lo, hi = a["overall"][m]["ci"]
        assert lo <= a["overall"][m]["value"] <= hi, m


def test_grouped_ci_wider_when_samples_within_group_are_copies() -> None:
    y0, p0 = _data(6, 60, 2, signal=0.7)
    y, p = np.repeat(y0, 20), np.repeat(p0, 20, axis=0)  # 20 identical beats per record
    groups = np.repeat(np.arange(60), 20)
    per_sample = evaluate(y, p, ["n", "p"], n_bootstrap=400, seed=0)
    grouped = evaluate(y, p, ["n", "p"], groups=groups, n_bootstrap=400, seed=0)
    assert per_sample["ci_method"] == "bootstrap over samples (n=400)"
    for m in ("accuracy", "auroc", "macro_f1", "brier"):
        w_s = np.diff(per_sample["overall"][m]["ci"])[0]
        w_g = np.diff(grouped["overall"][m]["ci"])[0]
        assert w_g >= w_s * 2, m  # ~sqrt(20) wider in theory


def test_resample_weights_move_groups_together() -> None:
    gidx, g = bs.group_index(np.array(["r1", "r1", "r2", "r3", "r3"]), 5)
    w = np.concatenate(list(bs.resample_weights(gidx, g, 200, seed=1, block=64)))
    assert w.shape == (200, 5)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all()
    assert np.allclose(w[:, [0, 2, 3]].sum(axis=1), 3)  # 3 groups drawn per resample


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"proba": np.full((4, 3), 1 / 3)}, "proba"),  # 3 columns for 2 classes
        ({"proba": np.full((4, 2), 0.6)}, "proba"),  # rows sum to 1.2
        ({"proba": np.array([[np.nan, 1]] * 4)}, "proba"),
        ({"y_true": np.array([0, 1, 2, 1])}, "y_true"),
        ({"y_true": np.array([0, 1, np.nan, 1])}, "y_true"),
        ({"y_true": np.array([0, 1, 1])}, "proba"),  # length mismatch
        ({"groups": np.array(["a", "b"])}, "groups"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"ci_level": 95}, "ci_level"),
    ],
)
def test_invalid_inputs_raise_medtorch_error(kwargs: dict, key: str) -> None:
    args = {"y_true": np.array([0, 1, 1, 0]), "proba": np.full((4, 2), 0.5),
            "class_names": ["a", "b"]}  # fmt: skip
    args.update(kwargs)
    with pytest.raises(MedtorchError, match=rf"^expected .*, got .* in evaluate\({key}\); "):
        evaluate(**args)


def test_aami_report_against_hand_computed_confusion() -> None:
    # truth rows x predicted cols, classes N S V F Q
    cm = np.array(
        [
            [50, 3, 2, 0, 0],
            [4, 10, 1, 0, 0],
            [2, 0, 20, 1, 0],
            [1, 0, 2, 3, 0],
            [0, 0, 0, 0, 1],
        ]
    )
    y = np.concatenate([np.full(cm[t, q], t) for t in range(5) for q in range(5)])
    yp = np.concatenate([np.full(cm[t, q], q) for t in range(5) for q in range(5)])
    groups = np.arange(len(y)) % 7
    r = aami_report(y, yp, groups=groups, n_bootstrap=200)
    assert r["confusion_matrix"] == cm.tolist()
    v = r["per_class"]["V"]
    assert v["Se"]["value"] == pytest.approx(20 / 23)
    assert v["+P"]["value"] == pytest.approx(20 / 25)
    assert v["F1"]["value"] == pytest.approx(2 * 20 / (2 * 20 + 5 + 3))
    assert v["specificity"]["value"] == pytest.approx((cm.sum() - 23 - 5) / (cm.sum() - 23))
    assert r["per_class"]["S"]["Se"]["value"] == pytest.approx(10 / 15)
    assert r["per_class"]["S"]["+P"]["value"] == pytest.approx(10 / 13)
    assert r["overall"]["accuracy"]["value"] == pytest.approx(84 / cm.sum())
    assert r["n_groups"] == 7 and r["ci_method"] == "bootstrap over groups (n=200)"
    lo, hi = v["Se"]["ci"]
    assert lo <= 20 / 23 <= hi
    with pytest.raises(MedtorchError, match=r"in aami_report\(y_pred\)"):
        aami_report(y, yp[:-1])

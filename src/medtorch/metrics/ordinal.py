"""Metrics for ordinal grades (e.g. diabetic retinopathy 0-4), with bootstrap CIs.

- quadratic weighted kappa (the DR-grading competitions' metric; sklearn
  ``cohen_kappa_score(weights="quadratic")``) and the mean absolute grade error of the
  predicted (arg-max) grade;
- the clinical binary decision of Gulshan et al. 2016, **referable** (grade >=
  ``referable_from``, moderate DR or worse, by default) against not: AUROC of
  P(referable) = the summed probability of those grades, and sensitivity / specificity of
  calling referable when that probability is at least 0.5.

CIs: percentile bootstrap over samples, or over whole groups when ``groups`` is given, with
the same resampling weights as :func:`medtorch.metrics.classification.evaluate`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import sklearn.metrics as skm

from medtorch.metrics import bootstrap as bs
from medtorch.metrics.classification import (
    check_args,
    check_groups,
    check_labels,
    check_proba,
    ci_method,
)


def _values(y: np.ndarray, p: np.ndarray, cut: int, w: np.ndarray | None) -> dict[str, float]:
    pred = p.argmax(1)
    ref_true, p_ref = y >= cut, p[:, cut:].sum(1)
    ref_pred = p_ref >= 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = skm.cohen_kappa_score(y, pred, weights="quadratic", sample_weight=w)
        both = 0 < ref_true.sum() < len(y) if w is None else _both(ref_true, w)
        auroc = skm.roc_auc_score(ref_true, p_ref, sample_weight=w) if both else np.nan
    ww = np.ones(len(y)) if w is None else w
    pos, neg = (ww * ref_true).sum(), (ww * ~ref_true).sum()
    return {
        "quadratic_kappa": float(kappa),
        "grade_mae": float((ww * np.abs(pred - y)).sum() / ww.sum()),
        "referable_auroc": float(auroc),
        "referable_sensitivity": float((ww * (ref_true & ref_pred)).sum() / pos) if pos else np.nan,
        "referable_specificity": float((ww * (~ref_true & ~ref_pred)).sum() / neg)
        if neg
        else np.nan,
    }


def _both(ref: np.ndarray, w: np.ndarray) -> bool:
    return bool((w * ref).sum() > 0 and (w * ~ref).sum() > 0)


def ordinal_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    referable_from: int,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Ordinal-grade metrics (see the module doc) as a JSON-ready dict of ``{"value", "ci"}``.

    >>> y = np.array([0, 1, 2, 3]); p = np.eye(4)[[0, 1, 3, 3]] * 0.9 + 0.025
    >>> r = ordinal_report(y, p, list("abcd"), referable_from=2, n_bootstrap=0)
    >>> r["referable_auroc"]["value"], r["grade_mae"]["value"]
    (1.0, 0.25)
    """
    k = len(class_names)
    check_args(n_bootstrap, ci_level, "ordinal_report")
    y = check_labels(y_true, k, "y_true", "ordinal_report")
    p = check_proba(proba, len(y), k)
    g = check_groups(groups, len(y), "ordinal_report")
    if not 0 < referable_from < k:
        raise ValueError(f"expected referable_from in 1..{k - 1}, got {referable_from}")
    point = _values(y, p, referable_from, None)
    dist: dict[str, list[float]] = {m: [] for m in point}
    if n_bootstrap > 0:
        gidx, n_groups = bs.group_index(g, len(y))
        for block in bs.resample_weights(gidx, n_groups, n_bootstrap, seed):
            for w in block:
                for m, v in _values(y, p, referable_from, w).items():
                    dist[m].append(v)
    cut_name = class_names[referable_from]
    out: dict[str, Any] = {
        "referable": f"grade >= {referable_from} ({cut_name} or worse); called at P >= 0.5",
        "ci_method": ci_method(g, n_bootstrap),
    }
    for m, v in point.items():
        samples = np.asarray(dist[m]) if n_bootstrap > 0 else None
        out[m] = bs.entry(v, samples, ci_level)
    return out

"""Multi-label metrics (e.g. the diagnosis categories of a patient's next visit).

- ``recall@k`` as Doctor AI (Choi et al. 2016) reports it: for each sample with at least
  one true label, the share of its true labels among its ``k`` highest-scored labels,
  averaged over those samples;
- micro AUPRC / AUROC (every (sample, label) pair pooled) and macro AUPRC / AUROC (the mean
  over the labels that have both a positive and a negative sample);
- the number of labels and of positives;
- :func:`multilabel_metrics`: point values (per-label accuracy, balanced accuracy, AUROC and
  F1, macro over labels) for the trainer's validation row.

scikit-learn computes the curve metrics (``average_precision_score``, ``roc_auc_score``);
confidence intervals resample whole groups (patients) as every medtorch metric does, by
giving each sample its resample multiplicity as a ``sample_weight``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from medtorch.errors import MedtorchError, fmt
from medtorch.metrics.classification import check_args, check_groups
from medtorch.metrics.ordinal import _report


def recall_at_k(y: np.ndarray, proba: np.ndarray, k: int, w: np.ndarray | None = None) -> float:
    """Mean over samples with a true label of |top-k ∩ true| / |true| (weighted by ``w``).

    >>> y = np.array([[1, 0, 1], [0, 1, 0]]); p = np.array([[.9, .8, .1], [.2, .7, .1]])
    >>> recall_at_k(y, p, 1), recall_at_k(y, p, 2)
    (0.75, 0.75)
    """
    k = min(k, y.shape[1])
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum(1)
    n_true = y.sum(1)
    has = n_true > 0
    ww = (np.ones(len(y)) if w is None else w) * has
    if ww.sum() == 0:
        return float("nan")
    return float((ww * np.where(has, hits / np.maximum(n_true, 1), 0)).sum() / ww.sum())


def _curves(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> dict[str, float]:
    keep = np.ones(len(y), bool) if w is None else w > 0
    yk, pk, wk = y[keep], p[keep], (None if w is None else w[keep])
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat_w = None if wk is None else np.repeat(wk, y.shape[1])
        pooled = yk.ravel()
        both = 0 < pooled.sum() < len(pooled)
        out["micro_auprc"] = (
            float(skm.average_precision_score(pooled, pk.ravel(), sample_weight=flat_w))
            if both else float("nan")
        )  # fmt: skip
        out["micro_auroc"] = (
            float(skm.roc_auc_score(pooled, pk.ravel(), sample_weight=flat_w))
            if both else float("nan")
        )  # fmt: skip
        cols = [j for j in range(y.shape[1]) if 0 < yk[:, j].sum() < len(yk)]
        ap = [skm.average_precision_score(yk[:, j], pk[:, j], sample_weight=wk) for j in cols]
        auc = [skm.roc_auc_score(yk[:, j], pk[:, j], sample_weight=wk) for j in cols]
        out["macro_auprc"] = float(np.mean(ap)) if ap else float("nan")
        out["macro_auroc"] = float(np.mean(auc)) if auc else float("nan")
    return out


def multilabel_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    label_names: Sequence[str],
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    ks: Sequence[int] = (10, 20),
) -> dict[str, Any]:
    """recall@k, micro/macro AUPRC and AUROC with (group) bootstrap CIs; see the module doc.

    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]]); p = np.array([[.9, .2], [.1, .8], [.7, .6], [.2, .1]])
    >>> r = multilabel_report(y, p, ["a", "b"], n_bootstrap=0, ks=(1,))
    >>> r["overall"]["recall@1"]["value"], r["overall"]["micro_auroc"]["value"]
    (0.8333333333333334, 1.0)
    """
    check_args(n_bootstrap, ci_level, "multilabel_report")
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 2 or p.shape != y.shape or y.shape[1] != len(label_names):
        raise MedtorchError(fmt(f"y_true and proba of shape (N, {len(label_names)})",
                                (y.shape, p.shape), "multilabel_report",
                                "pass one column per label"))  # fmt: skip
    if not np.isin(y, (0.0, 1.0)).all():
        raise MedtorchError(fmt("0/1 labels", "other values", "multilabel_report(y_true)",
                                "pass a multi-hot label matrix"))  # fmt: skip
    g = check_groups(groups, len(y), "multilabel_report")

    def values(w: np.ndarray | None) -> dict[str, float]:
        out = {f"recall@{k}": recall_at_k(y, p, k, w) for k in ks}
        return {**out, **_curves(y, p, w)}

    overall = _report(values, g, len(y), n_bootstrap, ci_level, seed, {})
    ci = overall.pop("ci_method")
    positives = y.sum(0)
    return {
        "n": len(y),
        "n_groups": len(np.unique(g)) if g is not None else len(y),
        "ci_method": ci,
        "ci_level": ci_level,
        "n_labels": len(label_names),
        "overall": overall,
        "label_positives": {str(n): int(c) for n, c in zip(label_names, positives)},
        "samples_without_labels": int((y.sum(1) == 0).sum()),
    }


def multilabel_metrics(
    y: np.ndarray, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """accuracy (per label, averaged), balanced accuracy, AUROC and F1, macro over labels.

    >>> y = np.array([[1, 0], [0, 1], [1, 1]]); p = np.array([[.9, .2], [.3, .7], [.6, .4]])
    >>> m = multilabel_metrics(y, p)
    >>> round(m["accuracy"], 3), m["auroc"]
    (0.833, 1.0)
    """
    y, proba = np.asarray(y), np.asarray(proba, dtype=np.float64)
    if y.ndim != 2 or proba.shape != y.shape:
        raise MedtorchError(fmt("y and proba of one shape (N, L)", (y.shape, proba.shape),
                                "multilabel_metrics", "pass one column per label"))  # fmt: skip
    pred = (proba >= threshold).astype(np.int64)
    both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = [skm.balanced_accuracy_score(y[:, j], pred[:, j]) for j in range(y.shape[1])]
        f1 = skm.f1_score(y, pred, average="macro", zero_division=0)
    auroc = [skm.roc_auc_score(y[:, j], proba[:, j]) for j in both]
    return {
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(np.mean(bacc)) if len(y) else math.nan,
        "auroc": float(np.mean(auroc)) if auroc else math.nan,
        "macro_f1": float(f1),
    }

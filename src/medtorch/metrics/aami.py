"""AAMI EC57-style heartbeat classification metrics (N, S, V, F, Q).

Per class: sensitivity (Se), positive predictivity (+P), F1 and specificity; overall:
accuracy and Cohen's kappa. Confidence intervals resample whole records (``groups``),
since beats of one record are correlated; the bootstrap is the one in
:mod:`medtorch.metrics.bootstrap`, shared with :func:`medtorch.metrics.evaluate`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from medtorch.errors import MedtorchError, fmt
from medtorch.metrics import bootstrap as bs
from medtorch.metrics.classification import check_args, check_groups, check_labels, ci_method

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
# report key -> key of bootstrap.confusion_stats
_PER_CLASS = {"Se": "sensitivity", "+P": "ppv", "F1": "f1", "specificity": "specificity"}


def aami_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str] = AAMI_CLASSES,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Se, +P, F1, specificity per class plus accuracy and kappa, with record-level CIs.

    >>> y = np.array([0, 0, 0, 2, 2, 1]); yp = np.array([0, 0, 2, 2, 2, 0])
    >>> r = aami_report(y, yp, groups=np.array(["100", "100", "101", "101", "102", "102"]),
    ...                 n_bootstrap=20)
    >>> r["per_class"]["V"]["Se"]["value"], r["per_class"]["V"]["+P"]["value"]
    (1.0, 0.6666666666666666)
    """
    names = [str(c) for c in class_names]
    k = len(names)
    if k < 2:
        raise MedtorchError(fmt("at least 2 class names", names, "aami_report(class_names)",
                                "use the AAMI classes N, S, V, F, Q"))  # fmt: skip
    check_args(n_bootstrap, ci_level, "aami_report")
    y = check_labels(y_true, k, "y_true", "aami_report")
    pred = check_labels(y_pred, k, "y_pred", "aami_report")
    if len(pred) != len(y):
        raise MedtorchError(fmt(f"{len(y)} predictions", len(pred), "aami_report(y_pred)",
                                "pass one prediction per beat"))  # fmt: skip
    g = check_groups(groups, len(y), "aami_report")
    gidx, n_groups = bs.group_index(g, len(y))

    labels = list(range(k))
    cm = skm.confusion_matrix(y, pred, labels=labels)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    tn = cm.sum() - cm.sum(1) - fp
    kw: dict[str, Any] = {"labels": labels, "average": None, "zero_division": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = {
            "Se": skm.recall_score(y, pred, **kw),
            "+P": skm.precision_score(y, pred, **kw),
            "F1": skm.f1_score(y, pred, **kw),
            "specificity": bs._div(tn, tn + fp),
        }
        kappa = float(skm.cohen_kappa_score(y, pred, labels=labels))

    dist: dict[str, np.ndarray] = {}
    if n_bootstrap > 0:

        def stat_fn(w: np.ndarray) -> dict[str, np.ndarray]:
            return bs.confusion_stats(bs.weighted_confusion(y, pred, k, w))

        dist = bs.bootstrap_distribution(stat_fn, gidx, n_groups, n_bootstrap, seed)

    per_class: dict[str, Any] = {}
    for i, name in enumerate(names):
        row: dict[str, Any] = {}
        for key, stat in _PER_CLASS.items():
            samples = dist[stat][:, i] if dist else None
            row[key] = bs.entry(point[key][i], samples, ci_level)
        row["support"] = int(cm[i].sum())
        per_class[name] = row
    overall = {
        "accuracy": bs.entry(float(skm.accuracy_score(y, pred)), dist.get("accuracy"), ci_level),
        "cohen_kappa": bs.entry(kappa, dist.get("cohen_kappa"), ci_level),
    }
    return {
        "standard": "AAMI EC57-style (Se, +P per heartbeat class)",
        "n": len(y),
        "n_groups": n_groups,
        "ci_method": ci_method(g, n_bootstrap),
        "ci_level": ci_level,
        "n_bootstrap": n_bootstrap,
        "overall": overall,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": names,
    }

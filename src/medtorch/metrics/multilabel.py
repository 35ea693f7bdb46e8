"""Point metrics for multi-label predictions: each of L labels is its own yes/no question.

y is (N, L) of 0/1 and proba (N, L) of independent probabilities. Averages are macro over the
labels (each label counts once, however rare), the usual report for next-visit diagnosis
prediction; a label's AUROC is left out of the mean when the label is all 0 or all 1.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn import metrics as skm

from medtorch.errors import MedtorchError, fmt


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

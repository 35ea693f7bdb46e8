"""The PhysioNet/CinC Challenge 2017 score, with bootstrap CIs over records.

The challenge scores each class by F1 = 2 N_xx / (sum_j N_xj + sum_i N_ix) (truth rows,
prediction columns: the usual F1) and ranks entries by the mean over Normal, AF and Other
(``F1_NAO``); the noisy class is scored but not in the mean. This family reports those, the
4 x 4 confusion matrix, AUROC per class and calibration (Brier score, expected calibration
error), each with a percentile bootstrap CI over records (the groups of the split).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtorch.metrics import bootstrap as bs

CLASSES = ("N", "A", "O", "~")
SCORED = ("N", "A", "O")  # the official mean
N_BINS = 15


def challenge_report(
    y: np.ndarray,
    proba: np.ndarray,
    class_names: list[str],
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any] | None:
    """F1 per class, the official mean F1 (N, A, O), confusion, AUROC per class and
    calibration; None unless the classes are the challenge's four.

    >>> y = np.array([0, 1, 2, 3, 0]); p = np.eye(4)[[0, 1, 2, 3, 2]]
    >>> r = challenge_report(y, p, ["N", "A", "O", "~"], n_bootstrap=0)
    >>> round(r["overall"]["f1_nao"]["value"], 4), r["per_class"]["O"]["f1"]["value"]
    (0.8889, 0.6666666666666666)
    """
    if tuple(class_names) != CLASSES:
        return None
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = len(CLASSES)
    pred = p.argmax(1)
    scored = [CLASSES.index(c) for c in SCORED]
    gidx, n_groups = bs.group_index(groups, len(y))
    onehot = np.eye(k)[y]
    brier = ((p - onehot) ** 2).sum(1)
    bins, gap = bs.ece_terms(y, p, N_BINS)
    rank_idx = [bs.score_index(p[:, i]) for i in range(k)]

    def stats(w: np.ndarray) -> dict[str, np.ndarray]:
        cm = bs.weighted_confusion(y, pred, k, w)
        f1 = bs.confusion_stats(cm)["f1"]  # (B, K)
        auroc = np.stack([bs.weighted_rank_metrics(rank_idx[i], y == i, w)[0]
                          for i in range(k)], axis=1)  # fmt: skip
        return {"f1": f1, "f1_nao": f1[:, scored].mean(1), "auroc": auroc,
                "brier": bs.weighted_mean(brier, w), "ece": bs.weighted_ece(bins, gap, w, N_BINS)}  # fmt: skip

    point = {key: v[0] for key, v in stats(np.ones((1, len(y)))).items()}
    dist = (
        bs.bootstrap_distribution(stats, gidx, n_groups, n_bootstrap, seed) if n_bootstrap else {}
    )

    def entry(key: str, i: int | None = None) -> dict[str, Any]:
        value = point[key] if i is None else point[key][i]
        samples = dist.get(key)
        if samples is not None and i is not None:
            samples = samples[:, i]
        return bs.entry(float(value), samples, ci_level)

    cm = bs.weighted_confusion(y, pred, k, np.ones((1, len(y))))[0].astype(int)
    return {
        "standard": (
            "PhysioNet/CinC Challenge 2017: F1 per class, official score = mean F1 over N, "
            f"A, O; CIs: bootstrap over {'records' if groups is not None else 'samples'} "
            f"(n={n_bootstrap}); one record per recording, patients not identified"
        ),
        "ci_method": f"bootstrap over {'records' if groups is not None else 'samples'} "
        f"(n={n_bootstrap})",
        "overall": {"f1_nao": entry("f1_nao"), "brier": entry("brier"), "ece": entry("ece")},
        "per_class": {
            c: {"F1": entry("f1", i), "AUROC": entry("auroc", i), "support": int((y == i).sum())}
            for i, c in enumerate(CLASSES)
        },
        "ece_bins": N_BINS,
        "confusion_matrix": cm.tolist(),  # rows truth, columns predicted, in CLASSES order
        "class_names": list(CLASSES),
        "n_records": int(n_groups),
    }

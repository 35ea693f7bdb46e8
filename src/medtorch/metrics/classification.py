"""Clinical classification metrics with (cluster) bootstrap confidence intervals.

Point values come from scikit-learn; the bootstrap re-computes every metric on weighted
resamples in a vectorised way (:mod:`medtorch.metrics.bootstrap`). A metric undefined on
the data (e.g. AUROC with one class present) is reported as ``"value": None`` with a
``"note"``, never as a made-up number.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from medtorch.errors import MedtorchError, fmt
from medtorch.metrics import bootstrap as bs

N_BINS = 15
ROW_SUM_TOL = 1e-3
OVERALL = (
    "accuracy", "balanced_accuracy", "auroc", "auprc", "macro_f1",
    "cohen_kappa", "brier", "ece", "log_loss",
)  # fmt: skip
PER_CLASS = ("sensitivity", "specificity", "ppv", "f1", "auroc")


# ---- check arguments and inputs (torchmetrics style) --------------------------------------
def check_args(n_bootstrap: int, ci_level: float, where: str) -> None:
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise MedtorchError(
            fmt("an int >= 0", n_bootstrap, f"{where}(n_bootstrap)", "use e.g. 1000")
        )
    if not 0.0 < ci_level < 1.0:
        raise MedtorchError(
            fmt("a level in (0, 1)", ci_level, f"{where}(ci_level)", "use e.g. 0.95")
        )


def check_labels(y: Any, k: int, name: str, where: str) -> np.ndarray:
    """1-D integer class indices in 0..k-1 (floats that are whole numbers are accepted)."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise MedtorchError(fmt("a non-empty 1-D array", f"shape {arr.shape}", f"{where}({name})",
                                "pass one class index per sample"))  # fmt: skip
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
        raise MedtorchError(fmt("integer class indices", f"dtype {arr.dtype} (or NaN)",
                                f"{where}({name})", "map labels to 0..K-1 and drop NaN"))  # fmt: skip
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise MedtorchError(fmt("integer class indices", "fractional values", f"{where}({name})",
                                "pass class indices, not probabilities"))  # fmt: skip
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= k:
        raise MedtorchError(fmt(f"labels in 0..{k - 1}", f"{arr.min()}..{arr.max()}",
                                f"{where}({name})", "labels must index class_names"))  # fmt: skip
    return arr


def check_groups(groups: Any, n: int, where: str) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise MedtorchError(fmt(f"{n} group ids", f"shape {g.shape}", f"{where}(groups)",
                                "give one group id per sample, or None"))  # fmt: skip
    return g


def check_proba(proba: Any, n: int, k: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (n, k):
        raise MedtorchError(fmt(f"proba of shape ({n}, {k}) (samples, len(class_names))",
                                f"shape {p.shape}", "evaluate(proba)",
                                "pass softmax probabilities, one column per class"))  # fmt: skip
    if not np.isfinite(p).all():
        raise MedtorchError(fmt("finite probabilities", f"{int((~np.isfinite(p)).sum())} NaN/inf",
                                "evaluate(proba)", "check the model output for NaN"))  # fmt: skip
    if p.min() < 0 or p.max() > 1 + ROW_SUM_TOL:
        raise MedtorchError(fmt("probabilities in [0, 1]", f"{p.min():.4g}..{p.max():.4g}",
                                "evaluate(proba)", "apply softmax to the logits"))  # fmt: skip
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > ROW_SUM_TOL:
        raise MedtorchError(fmt(f"rows summing to 1 (tol {ROW_SUM_TOL})",
                                f"{sums[worst]:.6g} in row {worst}", "evaluate(proba)",
                                "apply softmax to the logits (binary: two columns)"))  # fmt: skip
    return p


# ---- point values ----------------------------------------------------------------------------
def expected_calibration_error(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS
) -> float:
    """ECE of the top-class confidence with ``n_bins`` equal-width bins ``(i/M, (i+1)/M]``.

    >>> round(expected_calibration_error(np.array([1, 0]), np.array([[.1, .9], [.4, .6]])), 6)
    0.35
    """
    bins, gap = bs.ece_terms(np.asarray(y_true), np.asarray(proba, float), n_bins)
    sums = np.bincount(bins, weights=gap, minlength=n_bins)
    return float(np.abs(sums).sum() / len(gap))


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(*args, **kwargs))


def _point_values(y: np.ndarray, p: np.ndarray, pred: np.ndarray, k: int) -> dict[str, Any]:
    labels = list(range(k))
    present = np.bincount(y, minlength=k) > 0
    out: dict[str, Any] = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": _quiet(skm.balanced_accuracy_score, y, pred),
        "macro_f1": _quiet(skm.f1_score, y, pred, average="macro", zero_division=np.nan),
        "cohen_kappa": _quiet(skm.cohen_kappa_score, y, pred, labels=labels),
        "ece": expected_calibration_error(y, p),
        "log_loss": skm.log_loss(y, p, labels=labels),
    }
    if k == 2:
        out["brier"] = skm.brier_score_loss(y, p[:, 1], labels=labels)
    else:
        out["brier"] = skm.brier_score_loss(y, p, labels=labels, scale_by_half=False)
    out["auroc"] = out["auprc"] = None
    if k == 2:
        if present.all():
            out["auroc"] = skm.roc_auc_score(y, p[:, 1])
        if present[1]:  # average precision needs positives only
            out["auprc"] = skm.average_precision_score(y, p[:, 1])
    elif present.all():
        out["auroc"] = skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels)
        out["auprc"] = float(
            np.mean([skm.average_precision_score(y == i, p[:, i]) for i in labels])
        )
    return out


def _per_class_values(
    y: np.ndarray, p: np.ndarray, pred: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    labels = list(range(k))
    cm = skm.confusion_matrix(y, pred, labels=labels)
    tp, fp, fn = np.diag(cm), cm.sum(0) - np.diag(cm), cm.sum(1) - np.diag(cm)
    tn = cm.sum() - tp - fp - fn
    kw: dict[str, Any] = {"labels": labels, "average": None, "zero_division": np.nan}
    auroc = np.full(k, np.nan)
    for i in labels:
        if 0 < (y == i).sum() < len(y):
            auroc[i] = skm.roc_auc_score(y == i, p[:, i])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sensitivity": skm.recall_score(y, pred, **kw),
            "specificity": bs._div(tn, tn + fp),
            "ppv": skm.precision_score(y, pred, **kw),
            "f1": skm.f1_score(y, pred, **kw),
            "auroc": auroc,
        }


def _notes(y: np.ndarray, names: Sequence[str]) -> dict[str, str]:
    """Why AUROC / AUPRC are undefined, when they are."""
    present = np.bincount(y, minlength=len(names)) > 0
    absent = [names[i] for i in range(len(names)) if not present[i]]
    if not absent:
        return {}
    txt = f"undefined: class(es) {', '.join(absent)} absent from y_true"
    if len(names) == 2 and present[1]:
        return {"auroc": txt}
    return {"auroc": txt, "auprc": txt}


# ---- bootstrap kernels -----------------------------------------------------------------------
def _make_stat_fn(y: np.ndarray, p: np.ndarray, pred: np.ndarray, k: int) -> bs.StatFn:
    onehot = np.eye(k)[y]
    brier_i = (p[:, 1] - y) ** 2 if k == 2 else ((p - onehot) ** 2).sum(axis=1)
    eps = np.finfo(np.float64).eps
    logloss_i = -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))
    bins, gap = bs.ece_terms(y, p, N_BINS)
    idx = [bs.score_index(p[:, i]) for i in range(k)]

    def stat_fn(w: np.ndarray) -> dict[str, np.ndarray]:
        out = bs.confusion_stats(bs.weighted_confusion(y, pred, k, w))
        ranks = [bs.weighted_rank_metrics(idx[i], y == i, w) for i in range(k)]
        out["auroc_class"] = np.stack([r[0] for r in ranks], axis=1)  # (B, K)
        ap = np.stack([r[1] for r in ranks], axis=1)
        out["auroc"] = out["auroc_class"][:, 1] if k == 2 else out["auroc_class"].mean(axis=1)
        out["auprc"] = ap[:, 1] if k == 2 else ap.mean(axis=1)
        out["brier"] = bs.weighted_mean(brier_i, w)
        out["log_loss"] = bs.weighted_mean(logloss_i, w)
        out["ece"] = bs.weighted_ece(bins, gap, w, N_BINS)
        return out

    return stat_fn


def ci_method(groups: np.ndarray | None, n_bootstrap: int) -> str:
    if n_bootstrap == 0:
        return "none (n_bootstrap=0)"
    unit = "groups" if groups is not None else "samples"
    return f"bootstrap over {unit} (n={n_bootstrap})"


def evaluate(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str] | None = None,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Overall and per-class metrics with percentile bootstrap CIs, as a JSON-ready dict.

    ``proba`` is ``(N, K)`` probabilities (binary: 2 columns, positive = column 1);
    ``class_names`` default to ``"0"..."K-1"``. With ``groups``, whole groups are resampled
    (cluster bootstrap).

    >>> y = np.array([0, 1, 1, 0]); p = np.array([[.8, .2], [.3, .7], [.6, .4], [.9, .1]])
    >>> r = evaluate(y, p, ["neg", "pos"], n_bootstrap=50)
    >>> r["overall"]["accuracy"]["value"], r["per_class"]["pos"]["sensitivity"]["value"]
    (0.75, 0.5)
    """
    if class_names is None:
        shape = np.shape(proba)
        class_names = [str(i) for i in range(shape[1] if len(shape) == 2 else 2)]
    names = [str(c) for c in class_names]
    k = len(names)
    if k < 2:
        raise MedtorchError(fmt("at least 2 class names", names, "evaluate(class_names)",
                                "binary tasks use two names, e.g. ['neg', 'pos']"))  # fmt: skip
    check_args(n_bootstrap, ci_level, "evaluate")
    y = check_labels(y_true, k, "y_true", "evaluate")
    p = check_proba(proba, len(y), k)
    g = check_groups(groups, len(y), "evaluate")
    pred = p.argmax(axis=1)
    gidx, n_groups = bs.group_index(g, len(y))

    point = _point_values(y, p, pred, k)
    per_cls = _per_class_values(y, p, pred, k)
    dist: dict[str, np.ndarray] = {}
    if n_bootstrap > 0:
        stat_fn = _make_stat_fn(y, p, pred, k)
        dist = bs.bootstrap_distribution(stat_fn, gidx, n_groups, n_bootstrap, seed)
    notes = _notes(y, names)
    support = np.bincount(y, minlength=k)

    overall = {m: bs.entry(point[m], dist.get(m), ci_level, notes.get(m)) for m in OVERALL}
    per_class: dict[str, Any] = {}
    for i, name in enumerate(names):
        row: dict[str, Any] = {}
        for m in PER_CLASS:
            key = "auroc_class" if m == "auroc" else m
            samples = dist[key][:, i] if key in dist else None
            note = None
            if np.isnan(per_cls[m][i]):
                note = _per_class_note(m, name, support[i], int((pred == i).sum()), len(y))
            row[m] = bs.entry(per_cls[m][i], samples, ci_level, note)
        row["support"] = int(support[i])
        per_class[name] = row
    return {
        "n": len(y),
        "n_groups": n_groups,
        "ci_method": ci_method(g, n_bootstrap),
        "ci_level": ci_level,
        "n_bootstrap": n_bootstrap,
        "overall": overall,
        "per_class": per_class,
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "class_names": names,
    }


def _per_class_note(metric: str, name: str, support: int, n_pred: int, n: int) -> str:
    if metric in ("sensitivity", "f1") and support == 0:
        return f"undefined: no samples of class {name!r} in y_true"
    if metric == "ppv" and n_pred == 0:
        return f"undefined: class {name!r} never predicted"
    if metric == "specificity":
        return f"undefined: every sample is of class {name!r}"
    if metric == "auroc":
        return f"undefined: class {name!r} is {'absent' if support == 0 else 'the only class'}"
    return "undefined on these data"

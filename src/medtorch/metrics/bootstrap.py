"""Vectorised (cluster) bootstrap: resample weights and weighted metric kernels.

A bootstrap resample is a vector of multiplicities ``w`` (how often each sample was drawn).
A block of ``B`` resamples is a ``(B, N)`` weight matrix, and every metric below takes that
matrix and returns one value per resample, so 1000 resamples cost a few matrix products
instead of 1000 Python-level metric calls. With ``groups`` given, whole groups (patients,
recordings) are drawn with replacement and every sample inherits its group's count, so
correlated samples move together (cluster bootstrap).

A metric that is undefined in a resample (a class missing, a zero denominator) is ``nan``
there and skipped by the percentile CI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_BLOCK = 128  # resamples per block: (128, N) float64 weights stay small for N ~ 1e5


def group_index(groups: np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """Map group ids to 0..G-1 (each sample is its own group when ``groups`` is None)."""
    if groups is None:
        return np.arange(n), n
    _, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    inv = inv.ravel()
    return inv, int(inv.max()) + 1 if n else 0


def resample_weights(
    gidx: np.ndarray, n_groups: int, n_bootstrap: int, seed: int, block: int = _BLOCK
) -> Iterator[np.ndarray]:
    """Yield ``(b, N)`` multiplicity matrices, ``n_bootstrap`` rows in all, deterministic in ``seed``.

    >>> w = np.concatenate(list(resample_weights(np.array([0, 0, 1]), 2, 3, seed=0)))
    >>> w.shape, bool((w[:, 0] == w[:, 1]).all())  # samples of one group move together
    ((3, 3), True)
    """
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_bootstrap:
        b = min(block, n_bootstrap - done)
        draws = rng.integers(0, n_groups, size=(b, n_groups))  # (b, G) drawn group ids
        offsets = np.arange(b)[:, None] * n_groups
        counts = np.bincount((draws + offsets).ravel(), minlength=b * n_groups)
        yield counts.reshape(b, n_groups)[:, gidx].astype(np.float64)  # (b, N)
        done += b


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with nan where den == 0 (undefined, never a made-up number)."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def weighted_confusion(y: np.ndarray, pred: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """Confusion matrices ``(B, K, K)`` (rows = truth) of each weighted resample."""
    code = y * k + pred  # (N,) cell of each sample
    onehot = np.zeros((len(y), k * k))
    onehot[np.arange(len(y)), code] = 1.0
    return (w @ onehot).reshape(-1, k, k)


def confusion_stats(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics derived from ``(B, K, K)`` confusion matrices.

    Per-class arrays are ``(B, K)``, overall ones ``(B,)``. Definitions match scikit-learn:
    balanced accuracy averages recall over classes present in the truth; macro F1 averages
    over classes present in truth or prediction.
    """
    tp = np.diagonal(cm, axis1=1, axis2=2)  # (B, K)
    support = cm.sum(axis=2)  # true counts per class
    predicted = cm.sum(axis=1)
    n = cm.sum(axis=(1, 2))  # (B,)
    fp, fn = predicted - tp, support - tp
    tn = n[:, None] - tp - fp - fn
    sens = _div(tp, support)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    po = _div(tp.sum(axis=1), n)
    pe = _div((support * predicted).sum(axis=1), n**2)
    with np.errstate(invalid="ignore"):
        return {
            "sensitivity": sens,
            "specificity": _div(tn, tn + fp),
            "ppv": _div(tp, predicted),
            "f1": f1,
            "accuracy": po,
            "balanced_accuracy": _nanmean(sens),
            "macro_f1": _nanmean(f1),
            "cohen_kappa": _div(po - pe, 1 - pe),
        }


def _nanmean(a: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(a)
    return _div(np.where(ok, a, 0).sum(axis=1), ok.sum(axis=1))


def score_index(score: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank of each sample's score among the distinct scores (ascending), and their number."""
    _, inv = np.unique(score, return_inverse=True)
    inv = inv.ravel()
    return inv, int(inv.max()) + 1 if inv.size else 0


def weighted_rank_metrics(
    idx: tuple[np.ndarray, int], pos: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision per resample, ``(B,)`` each.

    AUROC is rank based with ties counted 1/2 (= sklearn ``roc_auc_score``); average
    precision is the step-wise sum over distinct thresholds (= ``average_precision_score``).
    ``idx`` comes from :func:`score_index`, computed once outside the resample loop.
    """
    inv, u = idx
    pos = pos.astype(bool)
    b = w.shape[0]
    flat = (inv[None, :] + np.arange(b)[:, None] * u).ravel()
    wp = np.bincount(flat, weights=(w * pos).ravel(), minlength=b * u).reshape(b, u)
    wn = np.bincount(flat, weights=(w * ~pos).ravel(), minlength=b * u).reshape(b, u)
    n_pos, n_neg = wp.sum(axis=1), wn.sum(axis=1)
    neg_below = np.cumsum(wn, axis=1) - wn
    auroc = _div((wp * (neg_below + 0.5 * wn)).sum(axis=1), n_pos * n_neg)
    tp = np.cumsum(wp[:, ::-1], axis=1)  # thresholds from high to low score
    fp = np.cumsum(wn[:, ::-1], axis=1)
    precision = np.nan_to_num(_div(tp, tp + fp))  # 0/0 only where wp is 0 too
    ap = _div((wp[:, ::-1] * precision).sum(axis=1), n_pos)
    return auroc, ap


def weighted_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of a per-sample quantity (Brier, log loss) per resample."""
    return _div(w @ values, w.sum(axis=1))


def ece_terms(y: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each sample's top-class confidence and its (correct - confidence).

    Bins are ``(i/M, (i+1)/M]``; ECE = sum over bins |sum(correct - conf)| / N.
    """
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], conf, side="left"), 0, n_bins - 1)
    return bins, correct - conf


def weighted_ece(bins: np.ndarray, gap: np.ndarray, w: np.ndarray, n_bins: int = 15) -> np.ndarray:
    onehot = np.zeros((len(bins), n_bins))
    onehot[np.arange(len(bins)), bins] = gap  # (N, M) signed gap in its bin
    return _div(np.abs(w @ onehot).sum(axis=1), w.sum(axis=1))


StatFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def bootstrap_distribution(
    stat_fn: StatFn, gidx: np.ndarray, n_groups: int, n_bootstrap: int, seed: int
) -> dict[str, np.ndarray]:
    """Run ``stat_fn`` over all resample blocks and stack its outputs along axis 0."""
    parts: dict[str, list[np.ndarray]] = {}
    for w in resample_weights(gidx, n_groups, n_bootstrap, seed):
        for key, val in stat_fn(w).items():
            parts.setdefault(key, []).append(val)
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def percentile_ci(samples: np.ndarray, ci_level: float) -> tuple[list[float] | None, str | None]:
    """Percentile CI of a ``(B,)`` sample, skipping nan resamples; also a note if any were skipped."""
    ok = samples[~np.isnan(samples)]
    if ok.size == 0:
        return None, "confidence interval undefined: metric undefined in every resample"
    alpha = (1.0 - ci_level) / 2.0
    lo, hi = np.percentile(ok, [100 * alpha, 100 * (1 - alpha)])
    note = None
    if ok.size < samples.size:
        note = f"CI from {ok.size} of {samples.size} resamples (metric undefined in the rest)"
    return [float(lo), float(hi)], note


def entry(
    value: float | None, samples: np.ndarray | None, ci_level: float, note: str | None = None
) -> dict[str, Any]:
    """One reported metric: ``{"value", "ci"}`` plus a ``"note"`` when something is undefined."""
    v = None if value is None or not np.isfinite(value) else float(value)
    out: dict[str, Any] = {"value": v, "ci": None}
    notes = [note] if note else []
    if v is None and not notes:
        notes.append("undefined on these data")
    if samples is not None and v is not None:
        out["ci"], ci_note = percentile_ci(samples, ci_level)
        if ci_note:
            notes.append(ci_note)
    if notes:
        out["note"] = "; ".join(notes)
    return out

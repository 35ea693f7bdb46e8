"""PNG plots for the run report: learning curves, ROC/PR, confusion matrix, reliability.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot),
so no global figure registry fills up and no backend is switched for the caller. Each
``*_figure`` function returns the figure (``Run.plot`` shows it inline in Jupyter); each
``plot_*`` function writes it as one PNG and drops it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm

from medtorch.metrics import bootstrap as bs
from medtorch.metrics.classification import N_BINS, expected_calibration_error

DPI = 110


class ReportFigure(Figure):
    """A matplotlib Figure that renders itself as a PNG in Jupyter and IPython
    (``_repr_png_``), with no pyplot and no backend switch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)  # a renderer for tight_layout and PNG output

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        return buf.getvalue()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.clear()
    return path


def read_history(history: str | Path | Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    """Columns of ``history.csv`` (a path, a mapping of columns, or a pandas DataFrame)."""
    if isinstance(history, (str, Path)):
        with open(history, newline="") as fh:
            rows = list(csv.DictReader(fh))
        cols = {k: [r.get(k, "") for r in rows] for k in (rows[0] if rows else {})}
    elif hasattr(history, "to_dict"):  # pandas DataFrame
        cols = {str(k): list(v) for k, v in history.to_dict(orient="list").items()}
    else:
        cols = {str(k): list(v) for k, v in dict(history).items()}
    out = {}
    for k, v in cols.items():
        try:
            out[k] = np.array([float(x) if x not in ("", None) else np.nan for x in v])
        except (TypeError, ValueError):
            continue  # non-numeric column (e.g. a timestamp)
    return out


def plot_learning_curves(
    history: str | Path | Mapping[str, Any] | Any,
    path: str | Path,
    monitor: str | None = None,
    kept_epoch: int | None = None,
) -> Path:
    """:func:`learning_curves_figure` written to ``path`` (PNG)."""
    return _save(learning_curves_figure(history, monitor, kept_epoch), path)


def learning_curves_figure(
    history: str | Path | Mapping[str, Any] | Any,
    monitor: str | None = None,
    kept_epoch: int | None = None,
) -> Figure:
    """Train/valid loss per epoch, plus every ``valid_<metric>`` column in a second panel.

    ``monitor`` (e.g. ``"valid_auroc"``) is drawn bold; ``kept_epoch`` (the trainer's
    ``best_epoch``, in ``metrics.json``) is marked on its panel. The plot does not work
    out which epoch is best itself: that is the trainer's decision (its monitor mode).
    """
    h = read_history(history)
    n = len(next(iter(h.values()))) if h else 0
    epochs = h.get("epoch", np.arange(1, n + 1))
    loss_cols = [c for c in ("train_loss", "valid_loss") if c in h]
    metric_cols = [c for c in h if c.startswith("valid_") and c != "valid_loss"]
    fig = ReportFigure(figsize=(10 if metric_cols else 5.5, 3.8))
    axes = fig.subplots(1, 2 if metric_cols else 1, squeeze=False)[0]
    for c in loss_cols:
        axes[0].plot(epochs, h[c], marker="o", ms=3, label=c)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    if metric_cols:
        for col in metric_cols:
            bold = col == monitor
            axes[1].plot(epochs, h[col], marker="o", ms=3, lw=2.5 if bold else 1.2, label=col)
        axes[1].set(xlabel="epoch", title="Validation metrics")
    if kept_epoch is not None:
        on_metrics = metric_cols and monitor not in (*loss_cols, "epoch", None)
        label = "kept: the last epoch" if monitor == "epoch" else f"kept: best {monitor or '?'}"
        axes[1 if on_metrics else 0].axvline(kept_epoch, color="grey", ls="--", lw=1, label=label)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if not h:
        axes[0].text(0.5, 0.5, "history is empty", ha="center", transform=axes[0].transAxes)
    fig.tight_layout()
    return fig


def plot_roc_pr(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    path_roc: str | Path,
    path_pr: str | Path,
) -> tuple[Path, Path]:
    """:func:`roc_pr_figures` written to ``path_roc`` and ``path_pr`` (PNG)."""
    roc, pr = roc_pr_figures(y_true, proba, class_names)
    return _save(roc, path_roc), _save(pr, path_pr)


def roc_pr_figures(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> tuple[Figure, Figure]:
    """ROC and precision-recall curves: the positive class (binary) or one-vs-rest per class."""
    y, p = np.asarray(y_true), np.asarray(proba, float)
    classes = [1] if p.shape[1] == 2 else list(range(p.shape[1]))
    roc, pr = ReportFigure(figsize=(5.2, 4.6)), ReportFigure(figsize=(5.2, 4.6))
    ax_roc, ax_pr = roc.subplots(), pr.subplots()
    for i in classes:
        pos = y == i
        label = str(class_names[i])
        if not pos.any() or pos.all():
            ax_roc.plot([], [], " ", label=f"{label}: undefined (one class present)")
            continue
        fpr, tpr, _ = skm.roc_curve(pos, p[:, i])
        prec, rec, _ = skm.precision_recall_curve(pos, p[:, i])
        ax_roc.plot(fpr, tpr, lw=1.6, label=f"{label} (AUC {skm.auc(fpr, tpr):.3f})")
        ap = skm.average_precision_score(pos, p[:, i])
        ax_pr.step(
            rec, prec, where="post", lw=1.6, label=f"{label} (AP {ap:.3f}, prev {pos.mean():.2f})"
        )
    ax_roc.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax_roc.set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", title="ROC")
    ax_pr.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is ax_roc else "lower left")
    roc.tight_layout()
    pr.tight_layout()
    return roc, pr


def plot_confusion(
    cm: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | Path,
    normalize: bool = True,
) -> Path:
    """:func:`confusion_figure` written to ``path`` (PNG)."""
    return _save(confusion_figure(cm, class_names, normalize), path)


def confusion_figure(
    cm: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str], normalize: bool = True
) -> Figure:
    """Confusion matrix (rows = truth); colour = row share when ``normalize``, cells show counts."""
    cm = np.asarray(cm, dtype=float)
    k = len(class_names)
    shown = bs._div(cm, cm.sum(axis=1, keepdims=True)) if normalize else cm
    shown = np.nan_to_num(shown)
    size = max(3.8, 0.75 * k + 2.2)
    fig = ReportFigure(figsize=(size + 0.8, size))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class" if normalize else "count")
    top = shown.max() or 1.0
    for t in range(k):
        for q in range(k):
            txt = f"{int(cm[t, q])}" + (f"\n{shown[t, q]:.0%}" if normalize else "")
            color = "white" if shown[t, q] > 0.6 * top else "black"
            ax.text(q, t, txt, ha="center", va="center", fontsize=8 if k > 6 else 9, color=color)
    ax.set_xticks(range(k), [str(c) for c in class_names], rotation=45 if k > 4 else 0)
    ax.set_yticks(range(k), [str(c) for c in class_names])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    fig.tight_layout()
    return fig


def plot_reliability(y_true: np.ndarray, proba: np.ndarray, path: str | Path) -> Path:
    """:func:`reliability_figure` written to ``path`` (PNG)."""
    return _save(reliability_figure(y_true, proba), path)


def reliability_figure(y_true: np.ndarray, proba: np.ndarray) -> Figure:
    """Reliability diagram of the top-class confidence (15 bins), ECE in the title,
    with the histogram of confidences below."""
    y, p = np.asarray(y_true), np.asarray(proba, float)
    bins, _ = bs.ece_terms(y, p, N_BINS)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    count = np.bincount(bins, minlength=N_BINS)
    acc = bs._div(np.bincount(bins, weights=correct, minlength=N_BINS), count)
    mean_conf = bs._div(np.bincount(bins, weights=conf, minlength=N_BINS), count)
    edges = np.linspace(0, 1, N_BINS + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, 1 / N_BINS

    fig = ReportFigure(figsize=(5.2, 5.6))
    ax, ax_h = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ok = count > 0
    ax.bar(centers[ok], acc[ok], width=width, edgecolor="black", lw=0.5, label="accuracy")
    low, gap = np.fmin(acc, mean_conf)[ok], np.abs(mean_conf - acc)[ok]
    ax.bar(centers[ok], gap, bottom=low, width=width, fill=False, hatch="//",
           edgecolor="tab:red", lw=0.8, label="gap to mean confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfect calibration")
    ece = expected_calibration_error(y, p, N_BINS)
    ax.set(ylabel="accuracy", ylim=(0, 1), title=f"Reliability (ECE {ece:.3f}, {N_BINS} bins)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax_h.bar(centers, count, width=width, color="grey", edgecolor="black", lw=0.5)
    ax_h.set(xlabel="top-class confidence", ylabel="samples", xlim=(0, 1))
    fig.tight_layout()
    return fig

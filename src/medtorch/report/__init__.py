"""Run report: PNG plots and one self-contained HTML page per run folder."""

from medtorch.report.html import write_report
from medtorch.report.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_reliability,
    plot_roc_pr,
)

__all__ = [
    "plot_confusion",
    "plot_learning_curves",
    "plot_reliability",
    "plot_roc_pr",
    "write_report",
]

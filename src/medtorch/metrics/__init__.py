"""Clinical metrics with bootstrap confidence intervals (classification, calibration, AAMI)."""

from medtorch.metrics.aami import aami_report
from medtorch.metrics.classification import evaluate, expected_calibration_error

__all__ = ["aami_report", "evaluate", "expected_calibration_error"]

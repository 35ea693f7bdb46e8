"""The ECG slice: MIT-BIH records, beats and their features, AF windows, inference on any record.

:mod:`~medtorch.ecg.records` (record lists, leads), :mod:`~medtorch.ecg.beats` (AAMI classes,
beat windows), :mod:`~medtorch.ecg.features` (RR and beat-shape features, patient
normalisation) and :mod:`~medtorch.ecg.af` (AF windows and rhythm labels) build the inputs of
the tasks in :mod:`medtorch.data.tasks.mitdb`; :mod:`~medtorch.ecg.predict` builds the same
inputs for a new record and classifies them, :mod:`~medtorch.ecg.score` scores that against
a record's annotations.
"""

from __future__ import annotations

from typing import Any

__all__ = ["predict_record", "write_predictions_csv"]


def __getattr__(name: str) -> Any:
    # lazy, so that building a task (which imports the slice) does not import torch
    if name in __all__:
        from medtorch.ecg import predict

        return getattr(predict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

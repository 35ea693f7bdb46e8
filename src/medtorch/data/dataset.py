"""In-memory dataset container shared by every stage after reading.

A task turns source files into one :class:`ArrayDataset`: model inputs as named numpy
arrays (``inputs["x"]`` always present), integer labels, and the group id of each sample
(patient, recording, record, lesion) used for grouped splits, leakage audits and
group-resampled bootstrap confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medtorch.errors import DataError


@dataclass
class ArrayDataset:
    """Samples held in memory as arrays.

    inputs: ordered name -> array with first axis N. ``"x"`` is the main input:
        (N, F) for feature vectors, (N, C, T) for signals, (N, C, H, W) for images.
        Extra inputs (e.g. ``"rr"`` RR-interval features, (N, 4)) are passed to the
        model positionally in this order: ``model(*inputs.values())``.
    y: (N,) int64 class indices into ``class_names``; or, for a multi-label task, (N, L)
        float32 0/1 with one column per entry of ``class_names`` (the label names).
    groups: (N,) str, the unit of independence of each sample.
    sample_ids: (N,) str, a stable id per sample (row id, record:sample index...).
    meta: free-form description (source, sfreq_hz, cohort counts...), JSON-serialisable.
    """

    inputs: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    class_names: list[str]
    sample_ids: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "x" not in self.inputs:
            raise DataError(
                "expected an input named 'x', got "
                f"{list(self.inputs)} in ArrayDataset.inputs; name the main input 'x'"
            )
        n = len(self.y)
        for name, arr in self.inputs.items():
            if len(arr) != n:
                raise DataError(
                    f"expected {n} rows, got {len(arr)} in input {name!r}; "
                    "every input needs one row per label"
                )
        if len(self.groups) != n:
            raise DataError(
                f"expected {n} group ids, got {len(self.groups)} in groups; "
                "give one group id per sample"
            )
        self.groups = np.asarray(self.groups).astype(str)
        if self.sample_ids is None:
            self.sample_ids = np.arange(n).astype(str)
        if np.ndim(self.y) == 2:  # multi-label: one 0/1 column per label
            self.y = np.asarray(self.y, dtype=np.float32)
            if self.y.shape[1] != len(self.class_names) or not np.isin(self.y, (0, 1)).all():
                raise DataError(
                    f"expected a 0/1 matrix with {len(self.class_names)} columns (one per "
                    f"label name), got shape {self.y.shape} in ArrayDataset.y; pass multi-hot labels"
                )
            return
        self.y = np.asarray(self.y, dtype=np.int64)
        if n and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
            raise DataError(
                f"expected labels in 0..{len(self.class_names) - 1}, got "
                f"{self.y.min()}..{self.y.max()} in ArrayDataset.y; "
                "map labels to class indices first"
            )

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def multilabel(self) -> bool:
        """True when ``y`` is a (N, L) 0/1 matrix (a multi-label task)."""
        return self.y.ndim == 2

    @property
    def strata(self) -> np.ndarray | None:
        """The labels a split may stratify by: ``y``, or None for a multi-label task."""
        return None if self.multilabel else self.y

    def subset(self, index: Sequence[int] | np.ndarray) -> ArrayDataset:
        """Rows ``index`` as a new dataset (arrays are copied by fancy indexing)."""
        idx = np.asarray(index, dtype=np.int64)
        assert self.sample_ids is not None
        return ArrayDataset(
            inputs={k: v[idx] for k, v in self.inputs.items()},
            y=self.y[idx],
            groups=self.groups[idx],
            class_names=list(self.class_names),
            sample_ids=self.sample_ids[idx],
            meta=dict(self.meta),
        )

    def class_counts(self) -> dict[str, int]:
        """Samples per class (multi-label: positives per label)."""
        if self.multilabel:
            return {c: int(k) for c, k in zip(self.class_names, self.y.sum(0))}
        counts = np.bincount(self.y, minlength=self.n_classes)
        return {c: int(k) for c, k in zip(self.class_names, counts)}

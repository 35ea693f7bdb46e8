"""CSV files of fixed-length signals, one row per sample: ``medtorch predict``'s input for
tasks on one-channel signals (the columns ``X1..X<T>`` the run was trained on, an optional
id column first and an optional ``y``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.tasks.registry import PredictInput
from medtorch.errors import DataError


def read_signal_csv(path: Path, n_times: int) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Read a CSV of fixed-length signals: columns X1..X<n_times>, optional id and y.

    Returns (x (N, 1, T) float32, ids, labels or None).
    """
    if not path.is_file():
        raise DataError(f"expected a CSV file, got {str(path)!r} (no such file); check the path")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(
                f"expected a header row, got an empty file in {path}; "
                "write a header with X1..X{n_times}"
            ) from None
        rows = list(reader)
    want = [f"X{i}" for i in range(1, n_times + 1)]
    missing = [c for c in want if c not in header]
    if missing:
        raise DataError(
            f"expected columns X1..X{n_times}, got {len(want) - len(missing)} of them "
            f"(first missing {missing[0]!r}) in {path}; the run was trained on {n_times} samples per row"
        )
    id_col = 0 if header[0] not in want and header[0] != "y" else None
    extra = [c for i, c in enumerate(header) if c not in want and c != "y" and i != id_col]
    if extra:  # a column the model does not read: a wrong file, or features it never saw
        raise DataError(
            f"expected columns [id,] X1..X{n_times}[, y], got {len(extra)} more ({extra[:5]}) "
            f"in {path} header; drop them (the run reads only those columns)"
        )
    cols = [header.index(c) for c in want]
    y_col = header.index("y") if "y" in header else None
    x = np.empty((len(rows), n_times), dtype=np.float32)
    for r, row in enumerate(rows):
        try:
            x[r] = [float(row[c]) for c in cols]
        except (ValueError, IndexError):
            raise DataError(
                f"expected {n_times} numeric values, got a short or non-numeric row {r + 2} in {path}; "
                "fix or drop that row"
            ) from None
    if not np.isfinite(x).all():
        bad = int(np.where(~np.isfinite(x).all(1))[0][0])
        raise DataError(
            f"expected finite values, got NaN/inf in row {bad + 2} of {path}; fix or drop that row"
        )
    ids = (
        [row[id_col] for row in rows] if id_col is not None else [str(i) for i in range(len(rows))]
    )
    labels = [row[y_col] for row in rows] if y_col is not None else None
    return x[:, None, :], ids, labels


def read_signal_csv_input(path: Path, hints: Any, params: Any = None) -> PredictInput:
    """The ``reader`` of tasks on fixed-length one-channel signals: :func:`read_signal_csv`
    with the run's ``n_times``."""
    x, ids, labels = read_signal_csv(Path(path), int(hints["n_times"]))
    return PredictInput({"x": x}, ids, labels)

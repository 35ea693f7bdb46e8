"""Reader for the UCI Epileptic Seizure Recognition ``data.csv`` (plain or gzipped).

Layout (UCI's R ``write.csv``): header ``"","X1",...,"X178","y"``; each row is an id such
as ``X21.V1.791`` (chunk 21 of Bonn recording ``V1.791``), 178 EEG samples (one second at
173.61 Hz) and the label ``y`` in 1..5. The 11,500 rows are 23 chunks of each of 500
recordings, so chunks of one recording must stay on one side of a split.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from importlib import resources
from pathlib import Path

import numpy as np

from medtorch.errors import DataError

N_SAMPLES = 178
SFREQ_HZ = 173.61
_ID = re.compile(r"^X(\d+)\.(.+)$")
_FIX = "use UCI's data.csv (medtorch data info uci_epileptic_seizure)"


def bundled_file() -> Path:
    """The copy of ``data.csv.gz`` shipped inside the package."""
    return Path(
        str(resources.files("medtorch.data").joinpath("bundled/uci_epileptic_seizure.csv.gz"))
    )


def _diagnose(path: Path, header: list[str], ids: list[str], rows: list[str]) -> DataError:
    """Find the first bad cell after the fast parse failed (slow path, errors only)."""
    for rid, row in zip(ids, rows):
        cells = row.split(",")
        if len(cells) != N_SAMPLES + 1:
            return DataError(
                f"expected {N_SAMPLES + 2} fields, got {len(cells) + 1} in {path} row "
                f"{rid!r}; every row needs id, X1..X178, y"
            )
        for col, cell in zip(header[1:], cells):
            try:
                value = float(cell)
            except ValueError:
                return DataError(
                    f"expected a number, got {cell!r} in {path} row {rid!r} column "
                    f"{col!r}; fix or remove that row"
                )
            if not np.isfinite(value):
                return DataError(
                    f"expected a finite number, got {cell!r} in {path} row {rid!r} "
                    f"column {col!r}; fix or remove that row"
                )
    return DataError(f"expected numeric rows, got unparsable data in {path}; {_FIX}")


def read_uci_seizure(
    path: Path | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``data.csv[.gz]``; None reads the bundled copy.

    Returns X float32 (N, 178), y int64 (N,) with the original labels 1..5, ids str (N,),
    recording str (N,) and chunk int64 (N,); rows with an empty ``y`` are left out
    (:func:`read_uci_seizure_rows` also says how many).
    """
    return read_uci_seizure_rows(path)[:5]


def read_uci_seizure_rows(
    path: Path | str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Read ``data.csv[.gz]``; None reads the bundled copy.

    Returns X float32 (N, 178), y int64 (N,) with the original labels 1..5, ids str (N,),
    recording str (N,), chunk int64 (N,) and the number of rows left out for an empty
    ``y`` (no label). Any malformed input raises a one-line :class:`DataError` naming the
    file (and row/column).

    >>> X, y, ids, rec, chunk, unlabelled = read_uci_seizure_rows()
    >>> X.shape, ids[0], rec[0], int(chunk[0]), unlabelled
    ((11500, 178), 'X21.V1.791', 'V1.791', 21, 0)
    """
    path = bundled_file() if path is None else Path(path)
    if not path.is_file():
        raise DataError(
            f"expected the UCI seizure CSV, got no file at {path}; {_FIX}, or omit "
            "the path to use the bundled copy"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"expected a readable CSV, got {exc} in {path}; {_FIX}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"expected a header and rows, got an empty file in {path}; {_FIX}")
    header = next(csv.reader([lines[0]]))
    expected = [f"X{i}" for i in range(1, N_SAMPLES + 1)]
    missing = [c for c in [*expected, "y"] if c not in header[1:]]
    if missing or header[1:] != [*expected, "y"]:
        got = f"missing {missing[:5]}" if missing else f"columns {header[:3]}...{header[-2:]}"
        raise DataError(f"expected columns id, X1..X178, y, got {got} in {path} header; {_FIX}")
    ids, rows = [], []
    for line in lines[1:]:
        k = line.find(",")
        ids.append(line[:k].strip().strip('"'))
        rows.append(line[k + 1 :])
    if not rows:
        raise DataError(f"expected data rows, got only a header in {path}; {_FIX}")
    # a row whose y cell is empty has no label: left out and counted (the task's cohort)
    keep = [i for i, r in enumerate(rows) if not r.rstrip().endswith((",", ',""'))]
    unlabelled = len(rows) - len(keep)
    if unlabelled:
        ids, rows = [ids[i] for i in keep], [rows[i] for i in keep]
    if not rows:
        raise DataError(f"expected labelled rows, got {unlabelled} rows with an empty y in "
                        f"{path}; fill in the labels")  # fmt: skip
    try:  # numpy's C parser: ~0.2 s for the 11,500 rows
        values = np.loadtxt(io.StringIO("\n".join(rows)), delimiter=",", dtype=np.float64, ndmin=2)
        ok = values.shape[1] == N_SAMPLES + 1 and bool(np.isfinite(values).all())
    except ValueError:
        ok = False
    if not ok:
        raise _diagnose(path, header, ids, rows)
    y_raw = values[:, -1]
    bad = np.flatnonzero((y_raw != np.round(y_raw)) | (y_raw < 1) | (y_raw > 5))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"expected y in 1..5, got {y_raw[i]:g} in {path} row {ids[i]!r} column 'y' "
            f"({len(bad)} bad rows); fix the labels"
        )
    seen: dict[str, int] = {}
    for i, rid in enumerate(ids):  # a repeated row id is a duplicated or mislabelled chunk
        if rid in seen:
            raise DataError(
                f"expected each row id once, got {rid!r} in rows {seen[rid] + 1} and {i + 1} of "
                f"{path} (data rows, after the header); drop the duplicate row"
            )
        seen[rid] = i
    chunk = np.empty(len(ids), dtype=np.int64)
    recording = []
    for i, rid in enumerate(ids):
        m = _ID.match(rid)
        if m is None:
            raise DataError(
                f"expected a row id like 'X21.V1.791' (chunk.recording), got {rid!r} in "
                f"{path} row {i + 1}; keep UCI's id column"
            )
        chunk[i] = int(m.group(1))
        recording.append(m.group(2))
    return (
        values[:, :-1].astype(np.float32),
        y_raw.astype(np.int64),
        np.array(ids),
        np.array(recording),
        chunk,
        unlabelled,
    )

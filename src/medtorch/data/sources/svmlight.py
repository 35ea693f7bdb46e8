"""Reader for svmlight / libsvm files (``label index:value ...``), plain or gzipped.

Used for the CSE6250 lab's ``patients.svmlight`` (one row per patient). Labels must be
binary: {0, 1}, or {-1, 1} which is mapped to {0, 1} (-1 -> 0, the negative class).
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_svmlight_file

from medtorch.errors import DataError

MAX_FEATURES = 1_000_000  # tasks densify X; the CSE6250 lab's file has 3,179


def _bad_line(raw: bytes) -> int | None:
    """1-based number of the first line that does not look like svmlight, if any."""
    num = rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
    tok = re.compile(rb"^" + num + rb"(\s+(qid:\d+|\d+:" + num + rb"))*\s*(#.*)?$")
    for i, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith(b"#") and not tok.match(line):
            return i
    return None


def _first_zero_index(raw: bytes) -> int | None:
    """1-based number of the first line with feature index 0, if any."""
    for i, line in enumerate(raw.splitlines(), 1):
        tokens = line.split(b"#", 1)[0].split()[1:]  # after the label
        if any(t.partition(b":")[0].strip(b"0") == b"" and b":" in t for t in tokens):
            return i
    return None


def read_svmlight(
    path: Path | str, n_features: int | None = None, zero_based: bool = False
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Read an svmlight file; returns X (scipy CSR, float32) and y (int64, 0/1).

    Feature indices are 1-based, the svmlight / libsvm convention (``zero_based=True``
    for files numbered from 0). The convention is fixed, never guessed from the file:
    scikit-learn's "auto" turns a whole file zero-based when one line holds index 0,
    which shifts every feature of that file against the model's columns.

    >>> # X, y = read_svmlight("cse6250_course/patients.svmlight.gz")  # (836, 3179)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"expected an svmlight file, got no file at {path}; check the path "
            "(medtorch data info cse6250_course)"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(
            f"expected a readable svmlight file, got {exc} in {path}; re-download or re-compress it"
        ) from None
    if not zero_based and (line := _first_zero_index(raw)) is not None:
        raise DataError(
            f"expected 1-based feature indices (the svmlight convention), got index 0 in "
            f"{path} line {line}; number the features from 1, or set task.params.zero_based: "
            "true if the whole file counts from 0"
        )
    try:
        X, y = load_svmlight_file(
            io.BytesIO(raw), n_features=n_features, dtype=np.float32, zero_based=zero_based
        )
    except (ValueError, OverflowError) as exc:  # OverflowError: an index past int64
        line = _bad_line(raw)
        where = f"{path} line {line}" if line else str(path)
        raise DataError(
            f"expected 'label index:value ...' lines, got a parse error ({exc}) in "
            f"{where}; fix that line"
        ) from None
    if X.shape[1] > MAX_FEATURES:  # densified later: a stray huge index would exhaust memory
        raise DataError(
            f"expected feature indices up to {MAX_FEATURES:,}, got {X.shape[1]:,} in {path}; "
            "fix the line with that index (a typo or another file's format)"
        )
    labels = set(np.unique(y).tolist())
    if labels <= {0.0, 1.0}:
        y_int = y.astype(np.int64)
    elif labels <= {-1.0, 1.0}:
        y_int = (y > 0).astype(np.int64)  # -1/1 convention: -1 is the negative class
    else:
        raise DataError(
            f"expected binary labels {{0, 1}} or {{-1, 1}}, got {sorted(labels)[:6]} in "
            f"{path}; recode the labels"
        )
    return sp.csr_matrix(X, dtype=np.float32), y_int

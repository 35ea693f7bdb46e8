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


def _bad_line(raw: bytes) -> int | None:
    """1-based number of the first line that does not look like svmlight, if any."""
    num = rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
    tok = re.compile(rb"^" + num + rb"(\s+(qid:\d+|\d+:" + num + rb"))*\s*(#.*)?$")
    for i, line in enumerate(raw.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith(b"#") and not tok.match(line):
            return i
    return None


def read_svmlight(
    path: Path | str, n_features: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Read an svmlight file; returns X (scipy CSR, float32) and y (int64, 0/1).

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
    try:
        X, y = load_svmlight_file(io.BytesIO(raw), n_features=n_features, dtype=np.float32)
    except ValueError as exc:
        line = _bad_line(raw)
        where = f"{path} line {line}" if line else str(path)
        raise DataError(
            f"expected 'label index:value ...' lines, got a parse error ({exc}) in "
            f"{where}; fix that line"
        ) from None
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

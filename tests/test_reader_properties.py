"""Property-based tests (hypothesis): whatever bytes a reader gets, it returns a valid result
or raises a one-line MedtorchError, never another exception; grouped splits never put one
group in two partitions, for any groups and labels."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from medtorch.config import SplitConfig  # noqa: E402
from medtorch.data.dataset import ArrayDataset  # noqa: E402
from medtorch.data.sources.svmlight import read_svmlight  # noqa: E402
from medtorch.data.sources.uci_seizure import N_SAMPLES, read_uci_seizure  # noqa: E402
from medtorch.data.sources.wfdb_reader import read_annotations, read_header  # noqa: E402
from medtorch.data.splits import audit_leakage, make_split  # noqa: E402
from medtorch.errors import MedtorchError  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _one_line(exc: MedtorchError) -> None:
    text = str(exc)
    assert text.strip() and "\n" not in text, text


def _in_tmp(name: str, data: bytes) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / name
    path.write_bytes(data)
    return tmp, path


# ---- UCI CSV ---------------------------------------------------------------------------

_HEADER = ",".join(['""', *[f'"X{i}"' for i in range(1, N_SAMPLES + 1)], '"y"'])
_CELL = st.one_of(
    st.integers(-2000, 2000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "x", '"', "1e999", " 3 ", "1,2"]),
)


@st.composite
def _uci_rows(draw) -> bytes:
    n = draw(st.integers(0, 6))
    lines = [_HEADER]
    for r in range(n):
        rid = draw(st.sampled_from([f'"X{r + 1}.V1.{r}"', '"X1.V1.0"', '"bad"', ""]))
        if draw(st.booleans()):  # a well-formed row with a random label
            cells = [str(v) for v in draw(st.lists(st.integers(-500, 500), min_size=N_SAMPLES,
                                                   max_size=N_SAMPLES))]  # fmt: skip
            cells.append(draw(_CELL))
        else:  # any number of random cells
            cells = draw(st.lists(_CELL, min_size=0, max_size=N_SAMPLES + 3))
        lines.append(",".join([rid, *cells]))
    return ("\n".join(lines) + "\n").encode()


def _check_uci(data: bytes) -> None:
    tmp, path = _in_tmp("data.csv", data)
    with tmp:
        try:
            X, y, ids, _, _ = read_uci_seizure(path)
        except MedtorchError as exc:
            _one_line(exc)
            return
        assert X.shape == (len(y), N_SAMPLES) and np.isfinite(X).all()
        assert set(np.unique(y)) <= {1, 2, 3, 4, 5} and len(set(ids)) == len(ids)


@SETTINGS
@given(st.binary(max_size=2000))
def test_uci_reader_random_bytes(data: bytes) -> None:
    _check_uci(data)


@SETTINGS
@given(_uci_rows())
def test_uci_reader_random_rows(data: bytes) -> None:
    _check_uci(data)


# ---- svmlight --------------------------------------------------------------------------

_SVM_TOKEN = st.one_of(
    st.builds(lambda i, v: f"{i}:{v}", st.integers(-2, 40), st.floats(allow_nan=True).map(repr)),
    st.sampled_from(["qid:1", "#", "# c", ":", "1:", ":1", "x:y", "3:1e999", "99999999999:1"]),
)
_SVM_LINE = st.builds(
    lambda label, toks: " ".join([label, *toks]),
    st.sampled_from(["0", "1", "-1", "2", "1.5", "x", ""]),
    st.lists(_SVM_TOKEN, max_size=6),
)


def _check_svm(data: bytes, zero_based: bool = False) -> None:
    tmp, path = _in_tmp("f.svmlight", data)
    with tmp:
        try:
            X, y = read_svmlight(path, zero_based=zero_based)
        except MedtorchError as exc:
            _one_line(exc)
            return
        assert X.shape[0] == len(y) and set(np.unique(y)) <= {0, 1}


@SETTINGS
@given(st.binary(max_size=1000))
def test_svmlight_reader_random_bytes(data: bytes) -> None:
    _check_svm(data)


@SETTINGS
@given(st.lists(_SVM_LINE, max_size=8), st.booleans())
def test_svmlight_reader_random_lines(lines: list[str], zero_based: bool) -> None:
    _check_svm(("\n".join(lines) + "\n").encode(), zero_based)


# ---- WFDB header and annotations -------------------------------------------------------

_HEA_FIELD = st.one_of(
    st.integers(-5, 100000).map(str),
    st.sampled_from(["100", "2", "360", "-360", "0", "abc", "212", "16", "200/mV", "100.dat", "x.dat",
                     "360/1", "21600", "", "MLII", "nan"]),
)  # fmt: skip


@st.composite
def _header(draw) -> bytes:
    record = " ".join(draw(st.lists(_HEA_FIELD, min_size=1, max_size=5)))
    signals = [" ".join(draw(st.lists(_HEA_FIELD, min_size=0, max_size=9)))
               for _ in range(draw(st.integers(0, 3)))]  # fmt: skip
    return ("\n".join([record, *signals]) + "\n").encode()


@SETTINGS
@given(st.one_of(_header(), st.binary(max_size=400)))
def test_wfdb_header_reader(data: bytes) -> None:
    tmp, path = _in_tmp("r.hea", data)
    with tmp:
        try:
            _, fs_hz = read_header(path.with_suffix(""))
        except MedtorchError as exc:
            _one_line(exc)
            return
        assert fs_hz > 0 and np.isfinite(fs_hz)


@SETTINGS
@given(st.binary(min_size=0, max_size=300))
def test_wfdb_annotation_reader_random_bytes(data: bytes) -> None:
    tmp, path = _in_tmp("r.atr", data)
    with tmp:
        try:
            ann = read_annotations(path.with_suffix(""), "atr")
        except MedtorchError as exc:
            _one_line(exc)
            return
        assert len(ann.sample) >= 1 and (np.diff(ann.sample) >= 0).all()


# ---- the split audit -------------------------------------------------------------------


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3)), min_size=0, max_size=80),
    st.sampled_from(["grouped", "by_patient", "grouped_kfold"]),
    st.integers(0, 3),
)
def test_grouped_splits_never_share_a_group(rows: list[tuple[int, int]], method: str, seed: int) -> None:  # fmt: skip
    groups = np.array([f"g{g}" for g, _ in rows], dtype=str)
    y = np.array([c for _, c in rows], dtype=np.int64)
    ds = ArrayDataset({"x": np.zeros((len(rows), 2), np.float32)}, y, groups,
                      ["a", "b", "c", "d"])  # fmt: skip
    cfg = SplitConfig(method=method, seed=seed, n_folds=3)
    try:
        split = make_split(ds, cfg)
    except MedtorchError as exc:  # too few rows or groups for the method: said in one line
        _one_line(exc)
        return
    parts = [set(groups[split[p]]) for p in ("train", "valid", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    idx = np.concatenate([split[p] for p in ("train", "valid", "test")])
    assert len(idx) == len(set(idx.tolist())) <= len(rows)
    assert audit_leakage(groups, split) == {"train-valid": 0, "train-test": 0, "valid-test": 0}

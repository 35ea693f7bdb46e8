"""Readers: the bundled UCI file, the lab svmlight file, and messy inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medtorch.data.sources.svmlight import read_svmlight
from medtorch.data.sources.uci_seizure import read_uci_seizure
from medtorch.data.tasks import build_task
from medtorch.errors import ConfigError, DataError

HEADER = '"",' + ",".join(f'"X{i}"' for i in range(1, 179)) + ',"y"\n'


def _row(rid: str, y: object = 1, value: object = 0) -> str:
    vals = [str(value)] + ["1"] * 177
    return f'"{rid}",' + ",".join(vals) + f",{y}\n"


def test_bundled_uci_loads_with_500_recordings_of_23_chunks() -> None:
    X, y, ids, recording, chunk = read_uci_seizure()
    assert X.shape == (11500, 178) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [0, 2300, 2300, 2300, 2300, 2300]
    assert len(set(ids)) == 11500
    recs, counts = np.unique(recording, return_counts=True)
    assert len(recs) == 500 and set(counts.tolist()) == {23}
    assert sorted(set(chunk.tolist())) == list(range(1, 24))
    assert (ids[0], recording[0], chunk[0]) == ("X21.V1.791", "V1.791", 21)


def test_seizure_tasks() -> None:
    ds = build_task("seizure_5class", None, {})
    assert ds.inputs["x"].shape == (11500, 1, 178)
    assert ds.class_names == ["seizure", "tumour_area", "healthy_area", "eyes_closed", "eyes_open"]
    assert ds.meta["source"].startswith("bundled") and ds.meta["sfreq_hz"] == 173.61
    assert ds.meta["cohort"]["class_counts"]["seizure"] == 2300
    binary = build_task("seizure_binary", None, {})
    assert binary.class_counts() == {"non_seizure": 9200, "seizure": 2300}


@pytest.mark.realdata
def test_seizure_task_reads_data_dir_copy(data_dir: Path) -> None:
    ds = build_task("seizure_binary", data_dir, {})
    assert ds.meta["source"].endswith("data.csv.gz") and len(ds) == 11500


def test_build_task_errors() -> None:
    with pytest.raises(ConfigError, match=r"task\.name.*seizure_binary"):
        build_task("seizure_binar", None, {})
    with pytest.raises(ConfigError, match=r"task\.params"):
        build_task("seizure_binary", None, {"nope": 1})


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (HEADER.replace(',"X5"', ',"X5b"') + _row("X1.V1.1"), "X5"),
        (HEADER + _row("X1.V1.1", y=7), r"y in 1\.\.5.*X1\.V1\.1"),
        (HEADER + _row("X1.V1.1") + _row("X2.V1.1", value="NaN"), r"X2\.V1\.1.*'X1'"),
        (HEADER + _row("X1.V1.1", value="abc"), r"'abc'.*X1\.V1\.1.*'X1'"),
        (HEADER + _row("X1.V1.1", value=""), r"X1\.V1\.1.*'X1'"),
        (HEADER + _row("V1.1"), r"'V1\.1'"),
    ],
    ids=["missing_column", "label_7", "nan", "non_numeric", "empty", "bad_id"],
)
def test_messy_uci_csv(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad_seizure.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        read_uci_seizure(path)
    assert "bad_seizure.csv" in str(err.value) and "\n" not in str(err.value)


def test_missing_uci_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.csv"):
        read_uci_seizure(tmp_path / "nothere.csv")


def test_small_valid_uci_csv(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(HEADER + _row("X1.V1.1", y=1) + _row("X2.V1.1", y=5))
    X, y, _, rec, _ = read_uci_seizure(path)
    assert X.shape == (2, 178) and y.tolist() == [1, 5] and rec.tolist() == ["V1.1", "V1.1"]


@pytest.mark.realdata
def test_lab_svmlight(data_dir: Path) -> None:
    X, y = read_svmlight(data_dir / "cse6250_course" / "patients.svmlight.gz")
    assert X.shape == (836, 3179) and X.dtype == np.float32 and int(y.sum()) == 336
    ds = build_task("svmlight_binary", data_dir, {})
    assert ds.inputs["x"].shape == (836, 3179) and ds.class_names == ["negative", "positive"]
    assert len(np.unique(ds.groups)) == 836


def test_svmlight_bad_line_and_labels(tmp_path: Path) -> None:
    bad = tmp_path / "bad.svmlight"
    bad.write_text("1 1:0.5 2:0.25\n0 3:abc\n")
    with pytest.raises(DataError, match=r"bad\.svmlight line 2"):
        read_svmlight(bad)
    multi = tmp_path / "multi.svmlight"
    multi.write_text("1 1:0.5\n2 2:0.5\n")
    with pytest.raises(DataError, match=r"multi\.svmlight"):
        read_svmlight(multi)
    pm = tmp_path / "pm.svmlight"
    pm.write_text("-1 1:0.5\n1 2:0.5\n")
    assert read_svmlight(pm)[1].tolist() == [0, 1]
    with pytest.raises(DataError, match=r"missing\.svmlight"):
        read_svmlight(tmp_path / "missing.svmlight")

"""Dataset registry: entries, verify (real data), corruption, offline fetch."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from medtorch.data import registry
from medtorch.data.paths import resolve_data_dir
from medtorch.errors import DataError

NAMES = [
    "uci_epileptic_seizure",
    "cse6250_course",
    "mitdb",
    "mimic3_demo",
    "medmnist",
    "ham10000_subset",
]


def test_six_datasets_with_checksums_and_licence() -> None:
    infos = registry.list_datasets()
    assert [d.name for d in infos] == NAMES
    for d in infos:
        assert d.files and d.licence and d.citations and d.homepage
        assert all(len(f.sha256) == 64 and f.size > 0 for f in d.files)
    assert len(registry.get_dataset("mitdb").files) == 146
    assert [d.name for d in infos if d.bundled] == ["uci_epileptic_seizure"]


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(DataError, match=r"did you mean mitdb.*known: uci_epileptic_seizure"):
        registry.get_dataset("mitbd")


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDTORCH_DATA", str(tmp_path))
    assert resolve_data_dir("/x/y") == Path("/x/y")
    assert resolve_data_dir() == tmp_path
    monkeypatch.delenv("MEDTORCH_DATA")
    assert resolve_data_dir().name == "data"


def test_status_and_formatting(tmp_path: Path) -> None:
    assert registry.dataset_status("uci_epileptic_seizure", tmp_path) == "bundled"
    assert registry.dataset_status("mitdb", tmp_path) == "missing"
    (tmp_path / "mitdb").mkdir()
    (tmp_path / "mitdb" / "RECORDS").write_text("100\n")
    assert registry.dataset_status("mitdb", tmp_path) == "partial (1 of 146 files)"
    table = registry.format_list(tmp_path)
    assert "ODC-By 1.0" in table and "ham10000_subset" in table
    info = registry.format_info("ham10000_subset", tmp_path)
    assert str(tmp_path / "ham10000_subset") in info and "CC BY-NC 4.0" in info


@pytest.mark.realdata
def test_verify_all_present_datasets(data_dir: Path) -> None:
    present = [
        d.name
        for d in registry.list_datasets()
        if registry.dataset_status(d.name, data_dir) == "present"
    ]
    assert present == NAMES  # the shared data folder holds all six
    for name in present:
        bad = [r for r in registry.verify(name, data_dir) if not r[1]]
        assert not bad, (name, bad[:3])


@pytest.mark.realdata
def test_verify_catches_corrupted_copy(data_dir: Path, tmp_path: Path) -> None:
    src = data_dir / "medmnist" / "retinamnist.npz"
    (tmp_path / "medmnist").mkdir()
    dst = tmp_path / "medmnist" / "retinamnist.npz"
    shutil.copyfile(src, dst)
    assert registry.verify("medmnist", tmp_path) == [("retinamnist.npz", True, "ok")]
    data = bytearray(dst.read_bytes())
    data[1000] ^= 0xFF
    dst.write_bytes(bytes(data))
    [(_, ok, reason)] = registry.verify("medmnist", tmp_path)
    assert not ok and "sha256" in reason


def test_fetch_offline_names_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"expected network access to https://zenodo\.org") as err:
        registry.fetch("medmnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "medmnist") in msg and "\n" not in msg
    assert not list((tmp_path / "medmnist").glob("*.part"))
    with pytest.raises(DataError, match=str(tmp_path / "ham10000_subset")):
        registry.fetch("ham10000_subset", tmp_path)


def test_fetch_rejects_bad_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"not the npz"))
    with pytest.raises(DataError, match="sha256"):
        registry.fetch("medmnist", tmp_path)
    assert not (tmp_path / "medmnist" / "retinamnist.npz").exists()

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
    "mimic4_demo",
    "mimic4_demo_meds",
    "medmnist",
    "ham10000_subset",
]
EXTERNAL = ["incartdb", "svdb"]  # listed by the publisher's SHA256SUMS.txt, not in the package
ARCHIVES = ["cinc2017"]  # installed from one archive by their own fetcher


def test_six_datasets_with_checksums_and_licence() -> None:
    infos = registry.list_datasets()
    assert [d.name for d in infos] == NAMES + EXTERNAL + ARCHIVES
    for d in infos:
        assert d.licence and d.citations and d.homepage
        if d.name in ARCHIVES:
            assert d.fetcher is not None and not d.files
            continue
        if d.name in EXTERNAL:
            assert not d.files and d.manifest_url.endswith("/1.0.0/SHA256SUMS.txt")
            continue
        assert d.files
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
    # the shared data folder holds all six and the CinC 2017 archive (not INCART or SVDB)
    assert present == NAMES + ARCHIVES
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


def _fake_physionet(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes], listed: dict) -> list:
    """urlopen serving ``files`` under PhysioNet's svdb URL, with a SHA256SUMS.txt of
    ``listed`` (path -> the bytes whose sha256 it lists)."""
    import hashlib
    import io

    base = "https://physionet.org/files/svdb/1.0.0/"
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in listed.items())
    served = {base + "SHA256SUMS.txt": sums.encode(), **{base + p: b for p, b in files.items()}}
    asked: list[str] = []

    def urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        asked.append(url)
        if url not in served:
            raise urllib.error.URLError(f"404 {url}")
        return io.BytesIO(served[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_fetch_from_the_publishers_checksum_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"RECORDS": b"800\n", "800.hea": b"800 2 128 230400\n", "800.atr": b"\x00\x01"}
    asked = _fake_physionet(monkeypatch, files, files)
    assert registry.dataset_status("svdb", tmp_path) == "missing"
    assert registry.verify("svdb", tmp_path) == [
        ("SHA256SUMS.txt", False, "missing: `medtorch data fetch svdb` saves the publisher's")
    ]
    done = registry.fetch("svdb", tmp_path)
    assert sorted(done) == sorted(files) and asked[0].endswith("/svdb/1.0.0/SHA256SUMS.txt")
    folder = tmp_path / "svdb"
    assert {p: (folder / p).read_bytes() for p in files} == files
    assert registry.dataset_status("svdb", tmp_path) == "present"
    assert all(ok for _, ok, _ in registry.verify("svdb", tmp_path))
    (folder / "800.atr").write_bytes(b"\x00\x02")  # corrupted later: verify says which file
    bad = [r for r in registry.verify("svdb", tmp_path) if not r[1]]
    assert [r[0] for r in bad] == ["800.atr"] and bad[0][2].startswith("sha256 mismatch")
    assert registry.fetch("svdb", tmp_path) == ["800.atr"]  # only the bad file again
    info = registry.format_info("svdb", tmp_path)
    assert "ODC-By 1.0" in info and "800.hea" in info and "Greenwald" in info


def test_fetch_rejects_a_file_that_disagrees_with_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = {"RECORDS": b"800\n", "800.dat": b"signal"}
    _fake_physionet(monkeypatch, {"RECORDS": b"800\n", "800.dat": b"tampered"}, listed)
    with pytest.raises(DataError, match=r"sha256 .* for 800\.dat, got sha256 mismatch") as err:
        registry.fetch("svdb", tmp_path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "svdb" / "800.dat").exists()
    assert registry.dataset_status("svdb", tmp_path) == "partial (1 of 2 files)"


def test_checksum_list_lines() -> None:
    digest = "ab" * 32
    text = f"{digest}  100.hea\n{digest} *sub/100.dat\n{digest}  ../escape\n# note\nshort  x\n"
    specs = registry._parse_manifest(text, "https://x/db/")
    assert [(f.path, f.size, f.url) for f in specs] == [
        ("100.hea", -1, "https://x/db/100.hea"),
        ("sub/100.dat", -1, "https://x/db/sub/100.dat"),
    ]  # a path leaving the folder is never written

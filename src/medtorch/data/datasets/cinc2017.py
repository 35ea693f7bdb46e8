"""PhysioNet/Computing in Cardiology Challenge 2017: AF classification from a short
single-lead ECG (AliveCor strips, 300 Hz, 9-61 s; N normal, A AF, O other rhythm, ~ noisy).

The records come in one archive, so this dataset is installed, not listed file by file:

- ``medtorch data fetch cinc2017`` downloads PhysioNet's checksum list, then
  ``training2017.zip`` and the final labels ``REFERENCE-v3.csv``, each checked against the
  list, into ``<data dir>/cinc2017/``, and unpacks the zip into the cache;
- ``medtorch data fetch cinc2017 --from FILE`` installs a local archive (tar, any
  compression, or zip) after checking it against its checksum file (``FILE.sha256`` or a
  ``SHA256SUMS.txt`` beside it naming it): no network.

Unpacked records go to ``<cache>/cinc2017/<first 16 hex of the archive's sha256>/``, never
beside the archive (a shared data folder is read-only); the cache is ``$MEDTORCH_CACHE``,
else ``platformdirs.user_cache_dir("medtorch")``. :func:`records_dir` finds the records: a
folder unpacked by hand under the data dir, else the cache's copy of the archive in the data
dir (unpacking it on first use), else the last ``--from`` install.

Unpacking refuses, before writing anything, any member that would leave the folder: an
absolute path, ``..``, a symbolic or hard link pointing out, a device or other special file
(:func:`safe_extract`; Python's ``filter="data"`` is applied too).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import platformdirs

from medtorch.data.registry import DatasetInfo, register_dataset
from medtorch.errors import DataError

NAME = "cinc2017"
BASE_URL = "https://physionet.org/files/challenge-2017/1.0.0/"
ARCHIVE = "training2017.zip"  # what PhysioNet serves (8,528 records)
LABELS = "REFERENCE-v3.csv"  # the final labels (the zip holds an earlier version)
SUMS = "SHA256SUMS.txt"
MARKER = "INSTALLED.json"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """medtorch's cache: ``$MEDTORCH_CACHE``, else the platform's user cache folder."""
    env = os.environ.get("MEDTORCH_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("medtorch"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- safe extraction


def safe_extract(archive: Path, dest: Path) -> int:
    """Unpack ``archive`` into ``dest`` (created first) through the project's one checked
    unpacker, :func:`medtorch.data.archive.safe_extract` (every member checked before
    anything is written); the number of files written."""
    from medtorch.data import archive as unpack

    dest.mkdir(parents=True, exist_ok=True)
    return len(unpack.safe_extract(archive, dest))


# ---------------------------------------------------------------- install, find, fetch


def _expected_sha(archive: Path, checksum: Path | None) -> tuple[str, Path]:
    """The archive's expected sha256, from ``checksum`` or a sidecar beside it."""
    candidates = [checksum] if checksum else [
        archive.with_name(archive.name + ".sha256"), archive.with_name(SUMS)]  # fmt: skip
    for path in candidates:
        if path is None or not path.is_file():
            continue
        for line in path.read_text().splitlines():
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2 and len(parts[0]) == 64 and parts[1].lstrip("*") == archive.name:
                return parts[0].lower(), path
            if len(parts) == 1 and len(parts[0]) == 64 and path.name.endswith(".sha256"):
                return parts[0].lower(), path
    raise DataError(
        f"expected a checksum file beside the archive ({archive.name}.sha256 or {SUMS} "
        f"listing {archive.name}), got none in {archive.parent}; put the publisher's "
        "checksum file there"
    )


def install_archive(archive: Path | str, checksum: Path | None = None) -> Path:
    """Check ``archive`` against its checksum file and unpack it into the cache (once);
    returns the records folder. A mismatch is a one-line DataError and nothing is unpacked."""
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(
            f"expected an archive file, got no file at {archive} in --from; give the path "
            "of training2017.zip or training2017.tar.xz"
        )
    expected, where = _expected_sha(archive, checksum)
    target = cache_dir() / NAME / expected[:16]
    if (target / MARKER).is_file():
        return _find_records(target, target)
    got = sha256_file(archive)
    if got != expected:
        raise DataError(
            f"expected sha256 {expected[:12]}... (from {where.name}), got {got[:12]}... in "
            f"{archive}; the archive is corrupt or not the one its checksum file names: "
            "get it again"
        )
    tmp = target.with_name(target.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    n = safe_extract(archive, tmp)
    records = _find_records(tmp, archive)
    (tmp / MARKER).write_text(json.dumps({"archive": archive.name, "sha256": got, "members": n,
                                          "records": str(records.relative_to(tmp))}))  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    (cache_dir() / NAME / "LAST").write_text(expected[:16] + "\n")
    return _find_records(target, target)


def _find_records(root: Path, where: Path) -> Path:
    """The folder holding ``RECORDS`` under ``root`` (itself, or up to two levels down)."""
    for depth in ("", "*/", "*/*/"):
        hits = sorted(root.glob(depth + "RECORDS"))
        if hits:
            return hits[0].parent
    raise DataError(
        f"expected a RECORDS file in the unpacked archive, got none in {where}; this is not "
        "the challenge's training archive"
    )


def records_dir(data_dir: Path | str | None) -> Path:
    """The unpacked training records: ``<data dir>/cinc2017/training2017`` (unpacked by hand),
    else the cache's copy of the archive in ``<data dir>/cinc2017`` (unpacked on first use),
    else the last ``fetch --from`` install; none -> one-line DataError saying how to get it."""
    folder = Path(data_dir) / NAME if data_dir is not None else None
    if folder is not None:
        for sub in ("training2017", ""):
            if (folder / sub / "RECORDS").is_file():
                return folder / sub
        for name in ("training2017.tar.xz", ARCHIVE, "training2017.tar.gz"):
            if (folder / name).is_file():
                records = install_archive(folder / name)
                if name == ARCHIVE and (folder / LABELS).is_file():
                    shutil.copyfile(folder / LABELS, records / LABELS)
                return records
    last = cache_dir() / NAME / "LAST"
    if last.is_file():
        target = cache_dir() / NAME / last.read_text().strip()
        if (target / MARKER).is_file():
            return _find_records(target, target)
    raise DataError(
        f"expected the CinC 2017 training records, got none in {folder or 'no data dir'} "
        "or the cache; run `medtorch data fetch cinc2017` (PhysioNet) or "
        "`medtorch data fetch cinc2017 --from training2017.tar.xz`"
    )


def check(data_dir: Path) -> list[tuple[str, bool, str]]:
    """``medtorch data verify cinc2017``: each archive in ``<data dir>/cinc2017`` against its
    checksum file, a folder unpacked by hand (present, not checked), or the cache's last
    ``--from`` install (checked when installed). Nothing is unpacked."""
    folder = Path(data_dir) / NAME
    rows: list[tuple[str, bool, str]] = []
    for name in ("training2017.tar.xz", ARCHIVE, "training2017.tar.gz"):
        if (folder / name).is_file():
            try:
                expected, _ = _expected_sha(folder / name, None)
            except DataError:
                rows.append((name, False, "no checksum file beside it"))
                continue
            ok = sha256_file(folder / name) == expected
            rows.append(
                (name, ok, "ok" if ok else f"sha256 mismatch (expected {expected[:12]}...)")
            )
    if (folder / "training2017" / "RECORDS").is_file():
        rows.append(("training2017/", True, "unpacked by hand (files not checked)"))
    last = cache_dir() / NAME / "LAST"
    if (
        not rows
        and last.is_file()
        and (cache_dir() / NAME / last.read_text().strip() / MARKER).is_file()
    ):
        rows.append(
            (f"cache {last.read_text().strip()}", True, "installed with --from, checked then")
        )
    return rows


def _download(url: str, dest: Path, timeout_s: float) -> None:
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
    except (OSError, urllib.error.URLError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"expected network access to {url}, got {exc} fetching {NAME}; download "
            f"{ARCHIVE} and {LABELS} by hand into {dest.parent}, or install a local copy "
            f"with `medtorch data fetch {NAME} --from FILE`"
        ) from None
    part.replace(dest)


def fetch(data_dir: Path, timeout_s: float = 30, source: Path | None = None) -> list[str]:
    """``medtorch data fetch cinc2017 [--from FILE]``: install ``source``, or download
    PhysioNet's checksum list, the training zip and the v3 labels (each checked against the
    list; a bad download is deleted) and unpack the zip into the cache. Returns what it wrote."""
    if source is not None:
        records = install_archive(Path(source))
        return [str(records)]
    folder = Path(data_dir) / NAME
    folder.mkdir(parents=True, exist_ok=True)
    _download(BASE_URL + SUMS, folder / SUMS, timeout_s)
    listed = {}
    for line in (folder / SUMS).read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2 and len(parts[0]) == 64:
            listed[parts[1].lstrip("*")] = parts[0].lower()
    done = [SUMS]
    for name in (ARCHIVE, LABELS):
        if name not in listed:
            raise DataError(
                f"expected {name} in PhysioNet's checksum list, got a list without it in "
                f"{BASE_URL + SUMS}; the release moved: see {BASE_URL}"
            )
        dest = folder / name
        if dest.is_file() and sha256_file(dest) == listed[name]:
            continue
        _download(BASE_URL + name, dest, timeout_s)
        if (got := sha256_file(dest)) != listed[name]:
            dest.unlink()
            raise DataError(
                f"expected sha256 {listed[name][:12]}... for {name}, got {got[:12]}... from "
                f"{BASE_URL + name} fetching {NAME}; the download is corrupt: retry"
            )
        done.append(name)
    records = install_archive(folder / ARCHIVE, folder / SUMS)
    shutil.copyfile(folder / LABELS, records / LABELS)
    return done


register_dataset(
    DatasetInfo(
        NAME,
        NAME,
        "PhysioNet/CinC Challenge 2017 (AF from a short single-lead ECG) 1.0.0",
        "8,528 single-lead AliveCor ECG strips (300 Hz, 9-61 s) labelled Normal, AF, Other "
        "rhythm or Noisy (final v3 labels); one recording per record, patients not identified",
        "ODC-By 1.0 (PhysioNet)",
        (
            "Clifford GD, Liu C, Moody B, Lehman L, Silva I, Li Q, Johnson AEW, Mark RG. AF "
            "classification from a short single lead ECG recording: the PhysioNet/Computing "
            "in Cardiology Challenge 2017. Computing in Cardiology 44 (2017)",
            "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation "
            "101(23):e215-e220 (2000)",
        ),
        "https://physionet.org/content/challenge-2017/1.0.0/",
        (),
        manual_download=f"download {BASE_URL}{ARCHIVE} and {BASE_URL}{LABELS}",
        size_note="about 200 MB unpacked (8,528 records)",
        fetcher=fetch,
        checker=check,
        rank=8,
    )
)

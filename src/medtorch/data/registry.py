"""Known datasets: files with sha256 and size, licence, citation, and where to get them.

``medtorch data list|info|verify|fetch`` is a thin layer over :func:`format_list`,
:func:`format_info`, :func:`verify` and :func:`fetch`. Checksums ship with the package in
``data/checksums/<name>.sha256`` (``<sha256>  <size>  <relative path>`` per line); the
MIT-BIH list is PhysioNet's own ``SHA256SUMS.txt`` for the files we use.

Databases kept only for external validation (INCART, SVDB) have no list in the package: no
copy was at hand to take sizes and hashes from. Their entry names the publisher's checksum
list instead (``manifest_url``); ``fetch`` saves it as ``<folder>/SHA256SUMS.txt`` first,
takes the files from it and checks each download against it, and ``verify`` checks against
that saved copy. The list itself is trusted as served (over HTTPS) on first fetch.

>>> get_dataset("mitdb").folder
'mitdb'
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from medtorch.data.paths import dataset_dir
from medtorch.errors import DataError

_CHUNK = 1 << 20
MANIFEST = "SHA256SUMS.txt"  # the publisher's checksum list, saved beside the data


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset, as stored under its folder.

    url: where the publisher serves it (None: no public single download).
    content_sha256: sha256 of the decompressed content, for files we store gzipped
        while the publisher serves them plain (or inside a zip, ``zip_member``).
    """

    path: str
    sha256: str
    size: int  # bytes; -1: not known (files listed by a publisher's checksum list)
    url: str | None = None
    content_sha256: str | None = None
    zip_member: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: str
    title: str
    description: str
    licence: str
    citations: tuple[str, ...]
    homepage: str
    files: tuple[FileSpec, ...] = field(repr=False)
    bundled: bool = False
    manual_download: str = ""  # how to get it when there is no public URL
    manifest_url: str | None = None  # the publisher's sha256sum list; files come from it
    size_note: str = ""  # the size, in words, when the files are not listed in the package
    rank: int = 100  # place in `medtorch data list` (then by name): the catalogue's order
    # installs the dataset itself (one archive, not a list of files):
    # fetcher(data_dir, timeout_s, source) -> what it wrote; source: a local archive (--from)
    fetcher: Callable[[Path, float, Path | None], list[str]] | None = None
    # with a fetcher: checker(data_dir) -> (what, ok, reason) rows for verify and status
    checker: Callable[[Path], list[tuple[str, bool, str]]] | None = None

    @property
    def citation(self) -> str:
        return self.citations[0]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def urls(self) -> list[str]:
        return sorted({f.url for f in self.files if f.url})


def _checksums(name: str) -> list[tuple[str, int, str]]:
    text = resources.files("medtorch.data").joinpath(f"checksums/{name}.sha256").read_text()
    rows = []
    for line in text.splitlines():
        if line.strip():
            digest, size, path = line.split(maxsplit=2)
            rows.append((digest, int(size), path))
    return rows


def _parse_manifest(text: str, base_url: str) -> tuple[FileSpec, ...]:
    """``sha256sum`` lines (``<digest>  <path>``, ``*`` binary marker allowed) -> FileSpecs."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            continue
        path = parts[1].lstrip("*")
        if path != MANIFEST and not path.endswith("/") and ".." not in Path(path).parts:
            out.append(FileSpec(path, parts[0].lower(), -1, base_url + path))
    return tuple(out)


def dataset_files(info: DatasetInfo, data_dir: Path | str | None) -> tuple[FileSpec, ...]:
    """The files of ``info``: the package's list, or the publisher's list saved under
    ``data_dir`` (none before the first fetch)."""
    if info.manifest_url is None:
        return info.files
    if data_dir is None:
        return ()
    manifest = dataset_dir(data_dir, info.folder) / MANIFEST
    if not manifest.is_file():
        return ()
    return _parse_manifest(manifest.read_text(), info.manifest_url.rsplit("/", 1)[0] + "/")


def files_from_checksums(
    name: str, source: Callable[[str], tuple[str | None, str | None, str | None]] | None = None
) -> tuple[FileSpec, ...]:
    """The files listed in the package's ``checksums/<name>.sha256``; ``source(path)`` gives
    each file's (url, content_sha256, zip_member) where the publisher serves it."""
    out = []
    for digest, size, path in _checksums(name):
        url, content, member = source(path) if source is not None else (None, None, None)
        out.append(FileSpec(path, digest, size, url, content, member))
    return tuple(out)


_DATASETS: dict[str, DatasetInfo] = {}
_DISCOVERED = False


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset (each module of ``medtorch.data.datasets`` declares its own)."""
    if info.name in _DATASETS and _DATASETS[info.name] != info:
        raise DataError(f"expected a new dataset name, got {info.name!r} in register_dataset; "
                        "pick another name")  # fmt: skip
    _DATASETS[info.name] = info
    return info


def _registry() -> dict[str, DatasetInfo]:
    """Every declared dataset: the modules of ``medtorch.data.datasets`` (one file a
    dataset, found on first use), then those named by the ``medtorch.datasets`` entry points."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        from medtorch.discovery import discover

        discover("medtorch.data.datasets", "medtorch.datasets", skip=())
    return _DATASETS


def list_datasets() -> list[DatasetInfo]:
    """All registered datasets, in catalogue order (``rank``, then name)."""
    return sorted(_registry().values(), key=lambda d: (d.rank, d.name))


def get_dataset(name: str) -> DatasetInfo:
    """Registry entry ``name``; unknown -> DataError with close matches and the full list."""
    reg = _registry()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DataError(
            f"expected a known dataset, got {name!r} in dataset name; {hint}known: {', '.join(d.name for d in list_datasets())}"
        )
    return reg[name]


def bundled_path(name: str) -> Path | None:
    """Path of the copy shipped inside the package, or None."""
    if not get_dataset(name).bundled:
        return None
    ref = resources.files("medtorch.data").joinpath(f"bundled/{name}.csv.gz")
    return Path(str(ref)) if ref.is_file() else None


def _sha256(path: Path, gunzip: bool = False) -> str:
    h = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def dataset_status(name: str, data_dir: Path | str | None) -> str:
    """ "present", "missing", "bundled" or "partial (n of m files)" (existence only)."""
    info = get_dataset(name)
    if info.checker is not None:
        rows = info.checker(Path(data_dir)) if data_dir is not None else []
        if not rows:
            return "missing"
        bad = sum(not ok for _, ok, _ in rows)
        return "present" if not bad else f"partial ({len(rows) - bad} of {len(rows)} files)"
    files = dataset_files(info, data_dir)
    n = 0
    if data_dir is not None:
        folder = dataset_dir(data_dir, info.folder)
        n = sum((folder / f.path).is_file() for f in files)
    if files and n == len(files):
        return "present"
    if n == 0:
        return "bundled" if bundled_path(name) is not None else "missing"
    return f"partial ({n} of {len(files)} files)"


def _check(spec: FileSpec, path: Path) -> tuple[bool, str]:
    if not path.is_file():
        return False, "missing"
    size = path.stat().st_size
    if spec.size in (-1, size) and _sha256(path) == spec.sha256:
        return True, "ok"
    if spec.content_sha256 and path.suffix == ".gz":  # re-compressed copy of the same content
        try:
            if _sha256(path, gunzip=True) == spec.content_sha256:
                return True, "ok (same content, compressed differently)"
        except (OSError, EOFError):
            pass
    if spec.size not in (-1, size):
        return False, f"size {size} bytes, expected {spec.size}"
    return False, f"sha256 mismatch (expected {spec.sha256[:12]}...)"


def verify(name: str, data_dir: Path | str) -> list[tuple[str, bool, str]]:
    """Check every file of ``name`` under ``data_dir``: (relative path, ok, reason).

    Never raises for bad files; the CLI decides what to do with failures.
    """
    info = get_dataset(name)
    if info.checker is not None:
        return info.checker(Path(data_dir)) or [
            (info.folder, False, f"missing: `medtorch data fetch {name} [--from FILE]` installs it")
        ]
    folder = dataset_dir(data_dir, info.folder)
    files = dataset_files(info, data_dir)
    if info.manifest_url is not None and not files:
        return [(MANIFEST, False, f"missing: `medtorch data fetch {name}` saves the publisher's")]
    return [(spec.path, *_check(spec, folder / spec.path)) for spec in files]


def _where(info: DatasetInfo, data_dir: Path | str) -> str:
    return str(dataset_dir(data_dir, info.folder))


def _download(url: str, dest: Path, timeout_s: float, name: str, folder: str) -> None:
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(part, "wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
    except (OSError, urllib.error.URLError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(
            f"expected network access to {url}, got {exc} fetching {name}; download it "
            f"by hand and place the files in {folder} (see medtorch data info {name})"
        ) from None
    part.replace(dest)


def fetch(
    name: str, data_dir: Path | str, timeout_s: float = 30, source: Path | None = None
) -> list[str]:
    """Download the missing or bad files of ``name`` into ``data_dir/<folder>``.

    A dataset with its own ``fetcher`` (one archive) installs itself, from ``source`` (a
    local archive, ``--from``) when given; ``source`` for any other dataset is an error.

    Each file goes to ``<file>.part`` and is renamed when complete, then checked against
    its sha256 (a mismatch deletes it and raises DataError). Offline -> one-line DataError
    naming the URL and the folder to fill by hand. Returns the files downloaded.
    """
    info = get_dataset(name)
    if info.fetcher is not None:
        return info.fetcher(Path(data_dir), timeout_s, source)
    folder = dataset_dir(data_dir, info.folder)
    if source is not None:
        raise DataError(
            f"expected a dataset installed from one archive, got {name!r} in --from; "
            f"drop --from: {name} is fetched file by file (medtorch data info {name})"
        )
    if info.manifest_url is not None and not (folder / MANIFEST).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _download(info.manifest_url, folder / MANIFEST, timeout_s, name, str(folder))
        if not dataset_files(info, data_dir):
            (folder / MANIFEST).unlink()
            raise DataError(
                f"expected sha256sum lines, got none in {info.manifest_url} fetching {name}; "
                f"the publisher's list moved or changed format: see {info.homepage}"
            )
    todo = [
        spec for spec in dataset_files(info, data_dir) if not _check(spec, folder / spec.path)[0]
    ]
    if todo and any(spec.url is None for spec in todo):
        raise DataError(
            f"expected a public download for {name}, got none in the registry; "
            f"{info.manual_download} and place the files in {folder} "
            f"(see medtorch data info {name})"
        )
    folder.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    archives: dict[str, Path] = {}
    for spec in todo:
        assert spec.url is not None
        dest = folder / spec.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if spec.zip_member:  # e.g. UCI serves a zip holding data.csv
            if spec.url not in archives:
                archives[spec.url] = folder / (Path(spec.url).name + ".download")
                _download(spec.url, archives[spec.url], timeout_s, name, str(folder))
            with (
                zipfile.ZipFile(archives[spec.url]) as zf,
                zf.open(spec.zip_member) as src,
                gzip.open(dest, "wb") as out,
            ):
                shutil.copyfileobj(src, out, _CHUNK)
        elif spec.content_sha256 and not spec.url.endswith(".gz"):  # served plain, stored gz
            plain = dest.with_name(dest.name + ".plain")
            _download(spec.url, plain, timeout_s, name, str(folder))
            with open(plain, "rb") as src, gzip.open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            plain.unlink()
        else:
            _download(spec.url, dest, timeout_s, name, str(folder))
        ok, reason = _check(spec, dest)
        if not ok:
            dest.unlink(missing_ok=True)
            raise DataError(  # the sha256 is the package's, or the publisher's list's
                f"expected sha256 {spec.sha256[:12]}... for {spec.path}, got {reason} "
                f"from {spec.url} fetching {name}; the download is corrupt or the "
                f"publisher changed the file: retry, or place it by hand in {folder}"
            )
        done.append(spec.path)
    for archive in archives.values():
        archive.unlink(missing_ok=True)
    return done


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def format_list(data_dir: Path | str | None) -> str:
    """Table of all datasets: name, what it is, size, licence, citation, status."""
    rows = [("name", "what", "size", "licence", "citation", "status")]
    for d in list_datasets():
        cite = d.citation.split(".")[0][:40]
        rows.append(
            (
                d.name,
                d.title,
                d.size_note.split(" (")[0] if d.manifest_url else _human(d.size),
                d.licence.split(" (")[0],
                cite,
                dataset_status(d.name, data_dir),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_info(name: str, data_dir: Path | str | None) -> str:
    """Every field of ``name``, where its files go, and each file's status (existence)."""
    d = get_dataset(name)
    where = _where(d, data_dir) if data_dir is not None else f"<data dir>/{d.folder}"
    status = dataset_status(name, data_dir)
    files = dataset_files(d, data_dir)
    size = (
        f"{d.size_note}; files and sha256 from the publisher's list ({d.manifest_url})"
        if d.manifest_url
        else f"{_human(d.size)} in {len(files)} files"
    )
    lines = [
        f"{d.name}: {d.title}",
        f"  what:      {d.description}",
        f"  licence:   {d.licence}",
        *[f"  cite:      {c}" for c in d.citations],
        f"  homepage:  {d.homepage}",
        f"  size:      {size}",
        f"  status:    {status}",
        f"  folder:    {where}",
    ]
    if d.bundled:
        lines.append("  bundled:   a copy ships inside the package and loads with no data dir")
    if d.manifest_url:
        lines.append(
            f"  fetch:     medtorch data fetch {d.name}  (downloads the list, then each file)"
        )
    elif d.urls:
        shown = d.urls if len(d.urls) <= 3 else [*d.urls[:2], f"... ({len(d.urls)} URLs)"]
        lines += [f"  download:  {u}" for u in shown]
        lines.append(
            f"  fetch:     medtorch data fetch {d.name}  (or download by hand into {where})"
        )
    else:
        lines.append(f"  download:  {d.manual_download}; place the files in {where}")
    folder = dataset_dir(data_dir, d.folder) if data_dir is not None else None
    lines.append("  files:")
    for spec in files[:50]:
        present = folder is not None and (folder / spec.path).is_file()
        shown_size = _human(spec.size) if spec.size >= 0 else "?"
        lines.append(f"    {spec.path:<32} {shown_size:>9}  {'present' if present else 'missing'}")
    if len(files) > 50:
        lines.append(f"    ... and {len(files) - 50} more (medtorch data verify {d.name})")
    if not files:
        lines.append(f"    (listed by the publisher; run medtorch data fetch {d.name})")
    return "\n".join(lines)

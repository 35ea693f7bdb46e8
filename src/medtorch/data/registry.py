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
from dataclasses import dataclass, field
from functools import lru_cache
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


_UCI_URL = "https://archive.ics.uci.edu/static/public/388/epileptic+seizure+recognition.zip"
_MIMIC3_DEMO_URL = "https://physionet.org/files/mimiciii-demo/1.4/"
# sha256 of the decompressed CSVs (MIMIC-III demo SOURCE.md); PhysioNet serves them plain
_MIMIC3_CONTENT = {
    "ADMISSIONS": "d2020d2373294a24b1f45d408788655b7f11f6e9facb81ab426d3b206bd68f66",
    "CALLOUT": "76edb7acc33ae976d7b777395d70db2075ade83fd2606ec16abada1795ff3b99",
    "CAREGIVERS": "04132c49fc282d0662f89e1e28c26f36f6da7ae6e5441deba6fa38e2be46dee0",
    "CPTEVENTS": "3715d0c80d9a4ebc639ede2f9727b90e22620e601d1708ce44958d7ee33b072c",
    "DATETIMEEVENTS": "791965ee07f19c90af114ca11a6e4976993edea15fa689795799f6ec0c51e2e6",
    "DIAGNOSES_ICD": "fc0efcaf575beb3b627e9d0fb53b1644a54acac6d0cc6d7964f5943f2cbb83fc",
    "DRGCODES": "cce7354ea215a6c6099620366bcb4e38fb2a3b0343c8549b3abd30c4c2bee486",
    "D_CPT": "427011b1cf5e910ec90fe3ee727270fab52b1c295d297843b126ebd2ff24caac",
    "D_ICD_DIAGNOSES": "3483111ded9acbd7ee942fae696e767bafc7f3b17d26658d082a8807022293c2",
    "D_ICD_PROCEDURES": "a651caec8a31b89baf24c8e2d539dadb1bbfd399a733d1ba1bb56b1724c77059",
    "D_ITEMS": "70fc815594ce8f4ce737e55bb4ece62b80a2636e4eecf7388dc5325a1a5b6fee",
    "D_LABITEMS": "a97f74eb69412454090f9e5816440c9b3d1c10cfa01accf65fab36079fce2ba1",
    "ICUSTAYS": "323c4dfb89584a9697bc04fc61f60cdaaee3e7cab19235a9da113b98895b34cb",
    "INPUTEVENTS_CV": "6afff6073da518f5bca2800d1990d4f5821fae56dafaf255390d5d2585f7cd63",
    "INPUTEVENTS_MV": "6cd23739099905adc08b913229ec6594d7f281df2b0c4a7a62528e40e7acae34",
    "LABEVENTS": "16b220663d4ca1f82a3b6c283f88e00b3a6ad1d5f570f4f606b57e43c7046fa2",
    "MICROBIOLOGYEVENTS": "82af878505d77709a0b464e3889055ec747364999590cbe613835da51169d4f3",
    "NOTEEVENTS": "cf49c6698ee632d77adc56228e46fac397d55f48d983f4b5e05e502f22a199f8",
    "OUTPUTEVENTS": "4e01bbee74f88bd70c5cf260a08e8535565ba3a1be6e2ec3120bb016774d2c7a",
    "PATIENTS": "6e05f5d9ada57cc3b799134dc659ce358184f5b0bbf3dcdbb3f84c34d4ccf0e1",
    "PRESCRIPTIONS": "94b5b109038aa4c528ca66be1a9398b833d96955058bc62088bf89ac8a1c02cc",
    "PROCEDUREEVENTS_MV": "7329315450d20f2f99c82c79c389a45202ebb0c1b8ac3cb9f943cec45c2e32d4",
    "PROCEDURES_ICD": "aa55768a5c804a34e2fdbba80c13cb825363b2ea8c92105d477c3dab0653f2ff",
    "SERVICES": "ffae77146a38473e444818e40831bcb10a5e4c84ff0d51d58198696f916cfbca",
    "TRANSFERS": "e06f089e5e3b5fca9cb95575d036167aed33a6313f1f2f7634ce728c39b901ee",
}


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


def _files(name: str) -> tuple[FileSpec, ...]:
    out = []
    for digest, size, path in _checksums(name):
        url = content = member = None
        if name == "uci_epileptic_seizure":
            url, member = _UCI_URL, "data.csv"
            content = "4b3f6024ea24a864c0de51b2ba477bf8b9e4974e8cc01a00dcf45bfc59d48deb"
        elif name == "mitdb":
            url = f"https://physionet.org/files/mitdb/1.0.0/{path}"
        elif name == "mimic3_demo":
            table = path.removesuffix(".csv.gz")
            url, content = f"{_MIMIC3_DEMO_URL}{table}.csv", _MIMIC3_CONTENT.get(table)
        elif name == "medmnist":
            url = f"https://zenodo.org/records/10519652/files/{path}"
        out.append(FileSpec(path, digest, size, url, content, member))
    return tuple(out)


@lru_cache(maxsize=1)
def _registry() -> dict[str, DatasetInfo]:
    infos = [
        DatasetInfo(
            "uci_epileptic_seizure",
            "uci_epileptic_seizure",
            "UCI Epileptic Seizure Recognition",
            "11,500 one-second single-channel EEG chunks (178 samples, 173.61 Hz) from 500 "
            "Bonn recordings (23 chunks each), 5 classes (y=1 seizure)",
            "CC BY 4.0 (UCI)",
            (
                "Andrzejak RG et al., Phys. Rev. E 64, 061907 (2001)",
                "UCI Machine Learning Repository, Epileptic Seizure Recognition (id 388)",
            ),
            "https://archive.ics.uci.edu/dataset/388/epileptic+seizure+recognition",
            _files("uci_epileptic_seizure"),
            bundled=True,
        ),
        DatasetInfo(
            "cse6250_course",
            "cse6250_course",
            "Georgia Tech CSE6250 DL lab: patients.svmlight",
            "836 patients x 3179 sparse features (svmlight, label 1 = 336 patients), output of the "
            "course's Spark pipeline on the bootcamp sample events",
            "none stated (course material; test fixture only)",
            ("Georgia Tech CSE6250 Big Data for Healthcare, DL lab (1_FeedforwardNet)",),
            "https://github.com/ast0414/CSE6250BDH-LAB-DL",
            _files("cse6250_course"),
            manual_download="no public download: copy patients.svmlight from the CSE6250 DL lab "
            "repository (the fork srjalan/CSE6250BDH-LAB-DL carries it), gzip it",
        ),
        DatasetInfo(
            "mitdb",
            "mitdb",
            "MIT-BIH Arrhythmia Database 1.0.0",
            "48 half-hour two-lead ECG records (47 subjects, 360 Hz, WFDB format 212) with "
            "reference beat annotations (109,494 beats)",
            "ODC-By 1.0 (PhysioNet)",
            (
                "Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE EMB Mag "
                "20(3):45-50 (2001); doi:10.13026/C2F305",
                "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation "
                "101(23):e215-e220 (2000)",
            ),
            "https://physionet.org/content/mitdb/1.0.0/",
            _files("mitdb"),
        ),
        DatasetInfo(
            "mimic3_demo",
            "mimic3_demo",
            "MIMIC-III Clinical Database Demo 1.4",
            "100 ICU patients, 25 of 26 MIMIC-III tables as gzipped CSV (no CHARTEVENTS)",
            "ODbL 1.0 (PhysioNet)",
            (
                "Johnson A, Pollard T, Mark R. MIMIC-III Clinical Database Demo (version 1.4), "
                "PhysioNet (2019); doi:10.13026/C2HM2Q",
                "Johnson AEW et al. MIMIC-III, a freely accessible critical care database. "
                "Sci Data 3:160035 (2016)",
                "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
            ),
            "https://physionet.org/content/mimiciii-demo/1.4/",
            _files("mimic3_demo"),
        ),
        DatasetInfo(
            "medmnist",
            "medmnist",
            "MedMNIST v2 RetinaMNIST (28x28)",
            "1,600 fundus images 28x28x3, diabetic-retinopathy grade 0-4; official splits "
            "1080/120/400",
            "CC BY 4.0 (MedMNIST)",
            (
                "Yang J et al. MedMNIST v2: a large-scale lightweight benchmark for 2D and 3D "
                "biomedical image classification. Sci Data 10:41 (2023)",
            ),
            "https://medmnist.com/",
            _files("medmnist"),
        ),
        DatasetInfo(
            "ham10000_subset",
            "ham10000_subset",
            "HAM10000 subset (5,366 images, 128x128)",
            "5,366 dermoscopic images (3,789 lesions, 7 classes) resized to 128x128 JPEG with the "
            "official metadata rows; split by lesion_id",
            "CC BY-NC 4.0 (non-commercial)",
            (
                "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large collection of "
                "multi-source dermatoscopic images of common pigmented skin lesions. Sci Data "
                "5:180161 (2018); doi:10.1038/sdata.2018.161",
            ),
            "https://doi.org/10.7910/DVN/DBW86T",
            _files("ham10000_subset"),
            manual_download="no public single download of this subset: it is 5,366 HAM10000 "
            "images (Harvard Dataverse doi:10.7910/DVN/DBW86T) resized to 128x128 with their "
            "official metadata rows, built as its SOURCE.md describes; download HAM10000 "
            "from the Dataverse, rebuild the subset that way",
        ),
        # external validation of the MIT-BIH heartbeat recipes (never trained on)
        DatasetInfo(
            "incartdb",
            "incartdb",
            "St Petersburg INCART 12-lead Arrhythmia Database 1.0.0",
            "75 half-hour 12-lead Holter excerpts from 32 patients (257 Hz) with reference "
            "beat annotations (over 175,000 beats); external test set for the MIT-BIH recipes",
            "ODC-By 1.0 (PhysioNet)",
            (
                "Tihonenko V, Khaustov A, Ivanov S, Rivin A, Yakushenko E. St Petersburg INCART "
                "12-lead Arrhythmia Database (version 1.0.0). PhysioNet (2008)",
                "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
            ),
            "https://physionet.org/content/incartdb/1.0.0/",
            (),
            manifest_url="https://physionet.org/files/incartdb/1.0.0/SHA256SUMS.txt",
            size_note="about 0.8 GB (75 records x 12 leads x 30 min at 257 Hz)",
        ),
        DatasetInfo(
            "svdb",
            "svdb",
            "MIT-BIH Supraventricular Arrhythmia Database 1.0.0",
            "78 half-hour two-lead ECG records (128 Hz) rich in supraventricular ectopy, with "
            "reference beat annotations; external test set for the MIT-BIH recipes",
            "ODC-By 1.0 (PhysioNet)",
            (
                "Greenwald SD, Patil RS, Mark RG. Improved detection and classification of "
                "arrhythmias in noise-stressed electrocardiograms using neural networks. "
                "Computers in Cardiology 17:461-464 (1990)",
                "Goldberger AL et al. Circulation 101(23):e215-e220 (2000)",
            ),
            "https://physionet.org/content/svdb/1.0.0/",
            (),
            manifest_url="https://physionet.org/files/svdb/1.0.0/SHA256SUMS.txt",
            size_note="about 55 MB (78 records x 2 leads x 30 min at 128 Hz)",
        ),
    ]
    return {d.name: d for d in infos}


def list_datasets() -> list[DatasetInfo]:
    """All registered datasets, in registry order."""
    return list(_registry().values())


def get_dataset(name: str) -> DatasetInfo:
    """Registry entry ``name``; unknown -> DataError with close matches and the full list."""
    reg = _registry()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DataError(
            f"expected a known dataset, got {name!r} in dataset name; {hint}known: {', '.join(reg)}"
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


def fetch(name: str, data_dir: Path | str, timeout_s: float = 30) -> list[str]:
    """Download the missing or bad files of ``name`` into ``data_dir/<folder>``.

    Each file goes to ``<file>.part`` and is renamed when complete, then checked against
    its sha256 (a mismatch deletes it and raises DataError). Offline -> one-line DataError
    naming the URL and the folder to fill by hand. Returns the files downloaded.
    """
    info = get_dataset(name)
    folder = dataset_dir(data_dir, info.folder)
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

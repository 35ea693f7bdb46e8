"""Read PhysioNet WFDB records (header + signal files) and their annotations.

Built on the ``wfdb`` package (format 212, 16, 8, 24, 32, 61, 80, 160, 310, 311, FLAC and
MATLAB v4 ``.mat`` signal files), with explicit checks that ``wfdb`` skips or answers with
an obscure traceback: the header's sampling rate (``wfdb`` silently falls back to 250 Hz
on a negative or non-numeric value), the number of samples actually present in each
signal file against the header's ``sig_len``, and the header's 16-bit checksum of each
channel. Every problem raises :class:`~medtorch.errors.RecordError` with one line naming
the record and the fix.

>>> rec = read_record(Path("mitdb/100"), channels=["MLII"])  # doctest: +SKIP
>>> rec.signal.shape, rec.fs_hz
((1, 650000), 360.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from medtorch.errors import RecordError

# Bytes per sample of each WFDB storage format (header field "format"); compressed FLAC
# formats (508, 516, 524) have no fixed size and are not size-checked.
_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}
_WFDB_DEFAULT_FS_HZ = 250.0  # the WFDB spec's value when the header gives no rate
_WFDB_DEFAULT_GAIN = 200.0  # the WFDB spec's value for gain 0 ("uncalibrated")
# beat annotations may stop this long before the signal ends (both limits exceeded: refused)
MAX_UNANNOTATED_TAIL_S = 60.0
MAX_UNANNOTATED_TAIL_FRAC = 0.10


@dataclass
class Record:
    """One WFDB record in physical units.

    signal: (n_channels, n_samples) float32, physical units (mV for ECG leads).
    """

    name: str
    signal: np.ndarray
    fs_hz: float
    sig_names: list[str]
    units: list[str]
    n_samples: int


@dataclass
class Annotations:
    """Annotations of one record: sample indices, symbols and aux notes (rhythm changes)."""

    sample: np.ndarray  # (K,) int64 sample index at fs_hz
    symbol: np.ndarray  # (K,) str, e.g. "N", "V", "+"
    aux_note: np.ndarray  # (K,) str, e.g. "(AFIB" on "+" rhythm annotations, else ""
    fs_hz: float
    extension: str


def _header_path(path_stem: Path) -> Path:
    return Path(str(path_stem) + ".hea")


def _check_fs(hea: Path) -> float:
    """Parse the sampling rate from the record line; ``wfdb`` defaults bad values to 250."""
    lines = [ln.strip() for ln in hea.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise RecordError(
            f"expected a record line, got an empty header in {hea}; "
            "re-download the record's .hea file"
        )
    fields = lines[0].split()
    if len(fields) < 3:
        return _WFDB_DEFAULT_FS_HZ
    raw = fields[2].split("/")[0].split("(")[0]
    try:
        fs_hz = float(raw)
    except ValueError:
        fs_hz = math.nan
    if not math.isfinite(fs_hz) or fs_hz <= 0:
        raise RecordError(
            f"expected a positive sampling rate (Hz), got {fields[2]!r} in {hea} "
            "(record line, field 3); fix the header's sampling frequency"
        )
    return fs_hz


def _check_file_sizes(path_stem: Path, header: wfdb.Record) -> None:
    """Compare the header's sig_len with the samples present in each signal file."""
    sig_len = header.sig_len
    if not sig_len:
        return  # wfdb infers the length from the file size
    files: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for i, fname in enumerate(header.file_name):
        fmt = str(header.fmt[i])
        if fmt not in _BYTES_PER_SAMPLE:
            return
        spf = header.samps_per_frame[i] or 1
        files[fname] = files.get(fname, 0.0) + spf * _BYTES_PER_SAMPLE[fmt]
        offsets[fname] = int(header.byte_offset[i] or 0)
    for fname, bytes_per_frame in files.items():
        path = path_stem.parent / fname
        if not path.is_file():
            raise RecordError(
                f"expected signal file {fname}, got no such file in {path.parent} "
                f"(named by {path_stem.name}.hea); copy the record's signal file there"
            )
        if fname.endswith(".mat"):
            continue  # MATLAB v4 files carry their own header; wfdb checks their size
        n_present = math.floor((path.stat().st_size - offsets[fname]) / bytes_per_frame + 1e-9)
        if n_present < sig_len:
            raise RecordError(
                f"expected {sig_len} samples per channel (header sig_len), got "
                f"{n_present} in {path} ({path.stat().st_size} bytes): the signal "
                "file is truncated; re-download the record"
            )
        if n_present > sig_len and fname.endswith(".dat"):
            raise RecordError(
                f"expected {sig_len} samples per channel (header sig_len), got "
                f"{n_present} in {path}: the header's sample count disagrees with "
                f"the signal; fix sig_len in {path_stem.name}.hea or re-download"
            )


def _select(names: list[str], channels: Sequence[str | int] | None, where: str) -> list[int]:
    if channels is None:
        return list(range(len(names)))
    idx = []
    for ch in channels:
        if isinstance(ch, int) and 0 <= ch < len(names):
            idx.append(ch)
        elif isinstance(ch, str) and ch in names:
            idx.append(names.index(ch))
        else:
            raise RecordError(
                f"expected a channel of {names}, got {ch!r} in {where}; "
                "pick an existing signal name or index"
            )
    return idx


def read_header(path_stem: Path | str) -> tuple[wfdb.Record, float]:
    """The header of a single-segment WFDB record and its checked sampling rate (Hz),
    without reading the samples (``sig_name``, ``sig_len``, ...). Any inconsistency
    raises ``RecordError``."""
    path_stem = Path(path_stem)
    hea = _header_path(path_stem)
    if not hea.is_file():
        raise RecordError(
            f"expected a WFDB header {hea.name}, got no such file in {hea.parent}; "
            "pass the record path without extension and copy its .hea there"
        )
    fs_hz = _check_fs(hea)
    try:
        header = wfdb.rdheader(str(path_stem))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on malformed headers
        raise RecordError(
            f"expected a valid WFDB header, got {type(exc).__name__}: {exc} in "
            f"{hea}; fix or re-download the header"
        ) from None
    if getattr(header, "n_seg", None):
        raise RecordError(
            f"expected a single-segment record, got {header.n_seg} segments in {hea}; "
            "read the segments one by one"
        )
    return header, fs_hz


def read_record(
    path_stem: Path | str,
    channels: Sequence[str | int] | None = None,
    target_fs_hz: float | None = None,
    verify_checksum: bool = True,
) -> Record:
    """Read a WFDB record (``path_stem`` without extension) in physical units.

    Reads the digital samples once (fast) and converts them with ``(d - baseline) / gain``.
    ``channels``: signal names or indices (default: all). ``target_fs_hz``: resample with
    :func:`medtorch.data.signal.resample`. Any inconsistency raises ``RecordError``.
    """
    path_stem = Path(path_stem)
    header, fs_hz = read_header(path_stem)
    _check_file_sizes(path_stem, header)
    try:
        rec = wfdb.rdrecord(str(path_stem), physical=False)
    except Exception as exc:
        raise RecordError(
            f"expected a readable WFDB signal, got {type(exc).__name__}: {exc} "
            f"in {path_stem}; re-download the record"
        ) from None
    d = rec.d_signal  # (n_samples, n_channels) int64
    if d is None or d.ndim != 2:
        raise RecordError(
            f"expected a (samples, channels) signal, got none in {path_stem}; "
            "multi-frequency records are not supported"
        )
    names = [str(s) for s in rec.sig_name]
    idx = _select(names, channels, f"{path_stem} channels")
    if verify_checksum and rec.checksum is not None:
        sums = d.sum(axis=0, dtype=np.int64) & 0xFFFF
        for i, expected in enumerate(rec.checksum):
            if expected is not None and int(sums[i]) != int(expected) & 0xFFFF:
                got = int(sums[i]) - 0x10000 if sums[i] >= 0x8000 else int(sums[i])
                raise RecordError(
                    f"expected checksum {expected} (header) for signal {names[i]!r}, "
                    f"got {got} from the samples in {path_stem}: header and signal "
                    "disagree; re-download the record"
                )
    gain = np.array([g or _WFDB_DEFAULT_GAIN for g in rec.adc_gain], dtype=np.float64)[idx]
    base = np.array(rec.baseline, dtype=np.float64)[idx]
    # (C, T): one float64 pass then float32, so 11-bit samples convert exactly
    signal = ((d[:, idx].T - base[:, None]) / gain[:, None]).astype(np.float32)
    if target_fs_hz is not None and not math.isclose(target_fs_hz, fs_hz):
        from medtorch.data.signal import resample

        signal = resample(signal, fs_hz, target_fs_hz)
        fs_hz = float(target_fs_hz)
    return Record(
        name=path_stem.name,
        signal=np.ascontiguousarray(signal),
        fs_hz=fs_hz,
        sig_names=[names[i] for i in idx],
        units=[str(rec.units[i]) for i in idx],
        n_samples=int(signal.shape[1]),
    )


def read_annotations(
    path_stem: Path | str, extension: str = "atr", fs_hz: float | None = None
) -> Annotations:
    """Read a WFDB annotation file (``<path_stem>.<extension>``).

    ``fs_hz``: the record's sampling rate (default: the annotation file's own, else the
    header's). Rhythm changes are ``"+"`` annotations whose ``aux_note`` is e.g. ``"(AFIB"``.
    """
    path_stem = Path(path_stem)
    path = Path(f"{path_stem}.{extension}")
    if not path.is_file():
        raise RecordError(
            f"expected annotation file {path.name}, got no such file in "
            f"{path.parent}; copy it there or use another extension"
        )
    try:
        ann = wfdb.rdann(str(path_stem), extension)
    except Exception as exc:
        raise RecordError(
            f"expected a readable WFDB annotation file, got {type(exc).__name__}: "
            f"{exc} in {path}; re-download it"
        ) from None
    _check_annotations(ann, path, path_stem)
    if fs_hz is None:
        fs_hz = ann.fs if ann.fs else None
    if fs_hz is None:
        fs_hz = _check_fs(_header_path(path_stem)) if _header_path(path_stem).is_file() else 0.0
    aux = [(a or "").rstrip("\x00").strip() for a in (ann.aux_note or [""] * len(ann.sample))]
    return Annotations(
        sample=np.asarray(ann.sample, dtype=np.int64),
        symbol=np.asarray(ann.symbol, dtype=str),
        aux_note=np.asarray(aux, dtype=str),
        fs_hz=float(fs_hz),
        extension=extension,
    )


def _known_symbols(ann: wfdb.Annotation) -> set[str]:
    from wfdb.io.annotation import ann_label_table

    known = {str(s) for s in ann_label_table.symbol if str(s).strip()}
    custom = getattr(ann, "custom_labels", None)
    if custom is not None and len(custom):
        known |= {str(s) for s in custom.symbol if str(s).strip()}
    return known


def _check_annotations(ann: wfdb.Annotation, path: Path, path_stem: Path) -> None:
    """What ``wfdb.rdann`` accepts from a damaged or foreign file: no annotations, codes
    that are no WFDB label (random bytes decode to those), samples going backwards or past
    the end of the signal. Each is a RecordError naming the file."""
    sample = np.asarray(ann.sample, dtype=np.int64)
    fix = "the file is damaged or not a WFDB annotation file: re-download it"
    if len(sample) == 0:
        raise RecordError(f"expected at least one annotation, got none in {path}; {fix}")
    known = _known_symbols(ann)
    bad = [i for i, s in enumerate(ann.symbol) if str(s) not in known]
    if bad:
        raise RecordError(
            f"expected WFDB annotation codes (N, V, +, ...), got {str(ann.symbol[bad[0]])!r} "
            f"at annotation {bad[0] + 1} ({len(bad)} unknown) in {path}; {fix}"
        )
    if sample.min() < 0 or (np.diff(sample) < 0).any():
        raise RecordError(f"expected non-negative, time-ordered sample numbers, got "
                          f"{sample[:3].tolist()}... in {path}; {fix}")  # fmt: skip
    hea = _header_path(path_stem)
    if hea.is_file():
        try:
            sig_len = wfdb.rdheader(str(path_stem)).sig_len
        except Exception:  # a damaged header is read_record's to report
            sig_len = None
        if sig_len and sample.max() >= sig_len:
            raise RecordError(
                f"expected annotations within the signal's {sig_len} samples, got sample "
                f"{int(sample.max())} in {path}; the annotations belong to another record or "
                "the signal is truncated: re-download both"
            )


def check_annotation_coverage(sample: np.ndarray, n_samples: int, fs_hz: float, where: str) -> None:
    """Refuse beat annotations that stop long before the signal does (a truncated file).

    A record's beats run to its end (the 48 MIT-BIH records: the last within 1.8 s of it),
    so annotations that stop more than :data:`MAX_UNANNOTATED_TAIL_S` s and more than
    :data:`MAX_UNANNOTATED_TAIL_FRAC` of the record before the end would score or train on
    part of the record as if it were the whole.

    >>> check_annotation_coverage(np.array([100, 21_000]), 21_600, 360.0, "r.atr")  # fine
    """
    if len(sample) == 0 or n_samples <= 0:
        return
    tail = n_samples - 1 - int(np.max(sample))
    if tail > MAX_UNANNOTATED_TAIL_S * fs_hz and tail > MAX_UNANNOTATED_TAIL_FRAC * n_samples:
        raise RecordError(
            f"expected beat annotations up to the end of the signal ({n_samples / fs_hz:.0f} s), "
            f"got the last at {int(np.max(sample)) / fs_hz:.0f} s in {where}: the annotation "
            "file looks truncated; re-download it (or cut the signal to the annotated part)"
        )

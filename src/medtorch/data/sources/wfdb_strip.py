"""One lead of a WFDB record as a strip: the reader of whole single-lead ECG strips
(PhysioNet/CinC 2017 and any record ``medtorch predict`` is given).

Format 16 is read directly from its header's fields (the challenge's 7,529 ``.mat`` files
load without ``wfdb``'s per-record overhead); every other format goes through ``wfdb``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtorch.errors import DataError


def _header(hea: Path) -> dict[str, Any]:
    """The fields of a WFDB header that a single strip needs."""
    try:
        lines = [ln.strip() for ln in hea.read_text(errors="replace").splitlines()]
    except OSError as exc:
        raise DataError(
            f"expected a readable WFDB header, got {exc} in {hea}; check the path"
        ) from None
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    head = lines[0].split() if lines else []
    if len(head) < 2 or not head[1].isdigit():
        raise DataError(
            f"expected a WFDB header line 'name n_signals fs n_samples', got "
            f"{lines[0] if lines else 'an empty file'!r} in {hea}; this is not a WFDB header"
        )
    n_sig = int(head[1])
    fs = float(head[2].split("/")[0]) if len(head) > 2 else 250.0
    n_samp = int(head[3]) if len(head) > 3 else None
    signals: list[dict[str, Any]] = []
    for line in lines[1 : 1 + n_sig]:
        f = line.split()
        fmt_field = f[1]
        fmt_code, _, offset = fmt_field.partition("+")
        gain_field = f[2] if len(f) > 2 else "200"
        gain_txt = gain_field.split("/")[0]
        baseline = None
        if "(" in gain_txt:
            gain_txt, _, b = gain_txt.partition("(")
            baseline = int(b.rstrip(")"))
        gain = float(gain_txt) or 200.0
        zero = int(f[4]) if len(f) > 4 else 0
        signals.append({
            "file": f[0], "format": fmt_code.split("x")[0].split(":")[0],
            "offset": int(offset or 0), "gain": gain,
            "baseline": zero if baseline is None else baseline,
            "name": " ".join(f[8:]) if len(f) > 8 else f"signal {len(signals)}",
        })  # fmt: skip
    return {"n_sig": n_sig, "fs": fs, "n_samples": n_samp, "signals": signals}


def read_strip(path: Path | str, lead: str | None = None) -> tuple[np.ndarray, float]:
    """One lead of a WFDB record (``.hea`` or its stem) in mV, and its rate.

    Format 16 (the challenge's ``.mat`` files, 24-byte header) is read directly and its
    size checked against the header; other formats through ``wfdb``. A record with several
    leads needs ``lead`` (a one-line error naming ``--lead`` otherwise). The header's
    first-sample value and checksum are not checked: 565 of the challenge's headers carry a
    first value that differs from the data, as in the original release.
    """
    path = Path(path)
    hea = path if path.suffix == ".hea" else path.with_name(path.name + ".hea")
    if path.suffix not in ("", ".hea") and path.with_suffix(".hea").is_file():
        hea = path.with_suffix(".hea")
    if not hea.is_file():
        raise DataError(f"expected a WFDB header, got no file {hea.name} in {hea.parent}; "
                        "give the record's .hea")  # fmt: skip
    h = _header(hea)
    names = [s["name"] for s in h["signals"]]
    if lead is None:
        if h["n_sig"] != 1:
            raise DataError(
                f"expected a single-lead record, got {h['n_sig']} leads ({', '.join(names)}) "
                f"in {hea}; choose one with --lead (e.g. --lead {names[0]!r})"
            )
        ch = 0
    elif lead in names:
        ch = names.index(lead)
    else:
        raise DataError(f"expected a lead of {hea.name} ({', '.join(names)}), got {lead!r} in "
                        "--lead; pick one of those")  # fmt: skip
    sig = h["signals"][ch]
    n = h["n_samples"]
    if sig["format"] == "16" and n is not None:
        data_file = hea.with_name(sig["file"])
        if not data_file.is_file():
            raise DataError(f"expected the signal file {sig['file']} beside {hea.name}, got none "
                            f"in {hea.parent}; copy it there")  # fmt: skip
        size = data_file.stat().st_size
        want = sig["offset"] + 2 * n * h["n_sig"]
        if size != want:
            raise DataError(
                f"expected {want} bytes in {data_file.name} ({n} samples x {h['n_sig']} "
                f"lead(s) as the header's sample count says, + {sig['offset']}), got {size} "
                f"in {hea}; the record is truncated or its header's sample count is wrong"
            )
        raw = np.fromfile(data_file, dtype="<i2", offset=sig["offset"])
        raw = raw.reshape(n, h["n_sig"])[:, ch]
        x = (raw.astype(np.float32) - sig["baseline"]) / sig["gain"]
        return x, h["fs"]
    import wfdb

    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")), channels=[ch])
    except Exception as exc:  # wfdb raises many kinds; name the record
        raise DataError(f"expected a readable WFDB record, got {type(exc).__name__}: {exc} in "
                        f"{hea}; check its signal files") from None  # fmt: skip
    return rec.p_signal[:, 0].astype(np.float32), float(rec.fs)

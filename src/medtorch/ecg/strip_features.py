"""Rhythm features of a whole single-lead strip, from its detected beats.

Most leading entries of the PhysioNet/CinC 2017 challenge read the RR series beside the
waveform: atrial fibrillation is "irregularly irregular", and "other rhythm" holds
premature beats, pauses, brady- and tachycardia and wide QRS complexes that a network
reading a strip decimated to 50 Hz sees poorly. :func:`strip_rr_features` gives one
vector per strip (:data:`STRIP_RR_FEATURES`); beats are found by
:func:`medtorch.ecg.predict.detect_beats` (wfdb's gqrs, R peaks corrected, T waves
dropped) on the strip at its own rate.

:func:`cached_strip_features` computes them for many records in worker processes and
keeps them in medtorch's cache (never beside the data, which may be read-only), keyed by
each record file's name, size and mtime and by :data:`FEATURES_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from medtorch.data.sources.wfdb_strip import read_strip
from medtorch.ecg.af import af_rr_features

FEATURES_VERSION = 1
STRIP_RR_FEATURES = (
    "beats_per_s", "log_median_rr", "cv_rr", "rmssd_over_mean", "median_sd_over_median",
    "pnn50", "frac_rr_off_median", "rr_defined",
    "log_min_rr_over_median", "log_max_rr_over_median", "frac_short_rr", "frac_long_rr",
    "frac_short_long_pairs", "cv_r_amplitude", "qrs_width_s", "frac_seconds_without_beat",
    "log_signal_sd", "diff_sd_over_sd",
)  # fmt: skip


def strip_rr_features(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """The :data:`STRIP_RR_FEATURES` of one strip (mV at ``fs_hz``), float32.

    Fewer than 4 beats (noise, a flat strip) leave the RR spreads at 0 and ``rr_defined``
    at 0, so a model can tell "no rhythm" from "regular rhythm".

    >>> fs = 300.0; t = np.arange(int(20 * fs)) / fs
    >>> ecg = np.exp(-(((t % 0.8) - 0.4) ** 2) / 2e-4)  # a beat every 0.8 s
    >>> f = dict(zip(STRIP_RR_FEATURES, strip_rr_features(ecg, fs)))
    >>> round(float(f["beats_per_s"]), 2), round(float(f["cv_rr"]), 3), float(f["rr_defined"])
    (1.25, 0.0, 1.0)
    """
    from medtorch.ecg.predict import detect_beats

    sig = np.asarray(x, dtype=np.float64)
    out = np.zeros(len(STRIP_RR_FEATURES), dtype=np.float64)
    n = len(sig)
    sd = float(sig.std()) if n else 0.0
    out[16] = np.log(sd + 1e-3)
    out[17] = float(np.diff(sig).std() / (sd + 1e-6)) if n > 1 else 0.0
    beats = detect_beats(sig, fs_hz) if n and np.isfinite(sig).all() else np.zeros(0, int)
    secs = max(int(n // fs_hz), 1)
    covered = np.unique((beats // fs_hz).astype(np.int64)) if len(beats) else np.zeros(0)
    out[15] = 1.0 - min(len(covered), secs) / secs
    if len(beats) < 4:
        out[0] = len(beats) / max(n / fs_hz, 1e-6)
        out[1] = np.log(max(n / fs_hz, 1.0))
        return out.astype(np.float32)
    out[:8] = af_rr_features(beats, fs_hz, np.array([0]), n)[0]
    rr = np.diff(beats) / fs_hz
    med = float(np.median(rr))
    out[8] = np.log(rr.min() / med)
    out[9] = np.log(rr.max() / med)
    short, long_ = rr < 0.8 * med, rr > 1.25 * med
    out[10], out[11] = short.mean(), long_.mean()
    out[12] = float(np.mean(short[:-1] & long_[1:]))
    half = round(0.1 * fs_hz)
    base = np.array([np.median(sig[max(b - half, 0) : b + half + 1]) for b in beats])
    amp = np.abs(sig[beats] - base)
    out[13] = float(amp.std() / (amp.mean() + 1e-6))
    w = round(0.08 * fs_hz)
    widths = []
    for b, a0, a in zip(beats, base, amp):
        seg = np.abs(sig[max(b - w, 0) : b + w + 1] - a0)
        widths.append(np.count_nonzero(seg > 0.3 * a) / fs_hz if a > 0 else 0.0)
    out[14] = float(np.median(widths))
    return out.astype(np.float32)


def _features_of(header: str) -> np.ndarray:
    x, fs = read_strip(Path(header))
    return strip_rr_features(x, fs)


def _key(files: Sequence[Path]) -> str:
    stats = [[p.name, (st := p.stat()).st_size, st.st_mtime_ns] for p in files]
    blob = json.dumps({"version": FEATURES_VERSION, "names": STRIP_RR_FEATURES, "files": stats})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_strip_features(
    headers: Sequence[Path], cache_root: Path, workers: int | None = None,
    compute: Callable[[str], np.ndarray] = _features_of,
) -> tuple[np.ndarray, bool]:  # fmt: skip
    """``(len(headers), n_features)`` features of the records (``.hea`` paths) and whether
    they came from the cache. Data files (``.mat`` beside each header) take part in the
    key, so a changed record is recomputed."""
    files = [f for h in headers for f in (h, h.with_suffix(".mat")) if f.is_file()]
    path = cache_root / "cinc2017_features" / f"{_key(files)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if z["features"].shape == (len(headers), len(STRIP_RR_FEATURES)):
                return z["features"], True
    jobs = [str(h) for h in headers]
    n = workers or min(2, os.cpu_count() or 1)
    if n > 1 and len(jobs) > 50:
        with ProcessPoolExecutor(n) as pool:
            rows = list(pool.map(compute, jobs, chunksize=64))
    else:
        rows = [compute(j) for j in jobs]
    feats = np.stack(rows).astype(np.float32) if rows else np.zeros((0, len(STRIP_RR_FEATURES)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, features=feats)
    os.replace(tmp, path)
    return feats, False

"""MIT-BIH Arrhythmia Database tasks: AAMI beat classes and AF rhythm windows.

``mitdb_aami_beats``: one sample per annotated beat, a window of the (filtered) lead around
the R peak as ``x`` (N, 1, T) and RR-interval features as ``rr`` (N, 4), labelled with
the five AAMI EC57 classes. ``mitdb_af_windows``: fixed non-overlapping windows labelled
AF/AFL or other from the rhythm annotations. Named split ``mitdb_ds1_ds2`` is the
inter-patient protocol of de Chazal et al. (2004).

The beat and window builders (:func:`rr_features`, :func:`beat_inputs`,
:func:`af_window_inputs`) are shared with :mod:`medtorch.ecg.predict`, so inference on a
new record builds exactly the training inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.signal import clean_ecg, resample
from medtorch.data.sources.wfdb_reader import read_annotations, read_record
from medtorch.data.splits import register_protocol
from medtorch.data.tasks.registry import register_task
from medtorch.errors import ConfigError, DataError, SplitError, fmt

# AAMI EC57:1998/(R)2008 beat classes from MIT-BIH beat symbols, as used by de Chazal,
# O'Dwyer & Reilly, IEEE TBME 51(7):1196-1206 (2004), Table I.
AAMI_MAP: dict[str, str] = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",  # normal, bundle branch blocks, escapes
    "A": "S", "a": "S", "J": "S", "S": "S",  # supraventricular ectopic
    "V": "V", "E": "V",  # ventricular ectopic
    "F": "F",  # fusion of ventricular and normal
    "/": "Q", "f": "Q", "Q": "Q",  # paced, fusion of paced and normal, unclassifiable
}  # fmt: skip
AAMI_CLASSES = ["N", "S", "V", "F", "Q"]
# WFDB's isqrs() beat codes: every QRS complex, used for RR intervals (AAMI-mapped or not).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

# de Chazal et al. 2004 inter-patient split; the four paced records are left out.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")  # fmt: skip
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212",
       "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")  # fmt: skip
PACED = ("102", "104", "107", "217")
ALL_RECORDS = tuple(sorted(DS1 + DS2 + PACED))
RR_FEATURES = ["prev_rr_s", "next_rr_s", "local_rr_s", "record_rr_s"]
# patient_norm=True: every RR feature relative to the record's own rhythm (log ratios), plus
# how irregular the rhythm is around the beat (so prematurity inside AF is not read as SVEB).
PATIENT_RR_FEATURES = ["log_prev_over_record", "log_next_over_record", "log_local_over_record",
                       "log_prev_over_next", "log_prev_over_centered", "log_next_over_centered",
                       "irregularity"]  # fmt: skip
PATIENT_CONTEXT_BEATS = 20  # the centred RR mean and irregularity use +-20 beats
RR_SEQUENCE_BEATS = 8  # plus the RR intervals of the +-8 neighbouring beats, as a sequence
PATIENT_RR_FEATURES += [f"log_rr_{j:+d}_over_record"
                        for j in range(-RR_SEQUENCE_BEATS, RR_SEQUENCE_BEATS + 1)]  # fmt: skip
N_PATIENT_RR = len(PATIENT_RR_FEATURES)  # 24
# morph_features=True: how each beat's shape departs from its record's usual (median) beat,
# as robust z-scores within the record (no labels): in the P-wave region, its correlation
# with the usual beat, the RMS of the difference and the ratio of peak-to-peak amplitudes;
# in the QRS region, the correlation and the RMS difference; after it (ST-T), the RMS
# difference.
MORPH_FEATURES = ["z_p_corr", "z_p_rms", "z_p_ptp_ratio", "z_qrs_corr", "z_qrs_rms", "z_t_rms"]
P_REGION_S = (-0.25, -0.06)  # seconds from the R peak: the P wave (PR interval <= 0.2 s)
QRS_REGION_S = (-0.06, 0.06)
T_REGION_S = (0.06, 0.45)
# morph_reference: which beats define the record's usual beat for those features. "all":
# the median beat of all beats (as patient_norm's x). "on_time": beats whose previous RR is
# at least the record's mean RR, i.e. not premature, for records where premature beats
# outnumber normal ones (MIT-BIH 232: 1,382 APCs, 398 normal beats after long pauses),
# whose median beat is an APC. Fewer than MIN_REFERENCE_BEATS on time: all beats.
# "auto": "on_time" where fewer than AUTO_ON_TIME_BELOW of the beats are on time (premature
# beats dominate; 0.25: every DS1 record has at least 0.31, DS1 records stripped of normal
# beats down to 232's mix 0.10-0.20; benchmarks/ecg_morph_reference.py), else "all"
# ("on_time" everywhere costs DS1 leave-one-record-out S F1 72.6 -> 57.8: in AF it takes
# the reference from the long-RR beats only).
MORPH_REFERENCES = ("all", "on_time", "auto")
MIN_REFERENCE_BEATS = 10
AUTO_ON_TIME_BELOW = 0.25
MORPH_Z_CLIP = 20.0
AF_RHYTHMS = frozenset({"(AFIB", "(AFL"})
INTRA_PATIENT_WARNING = "intra-patient split: beats of one record in train and test; optimistic"


def mitdb_dir(data_dir: Path | str | None) -> Path:
    """``<data_dir>/mitdb``, or ``data_dir`` itself when it holds the records."""
    if data_dir is None:
        raise ConfigError(
            "expected a data dir holding mitdb/, got None in --data-dir; "
            "set MEDTORCH_DATA or pass --data-dir"
        )
    root = Path(data_dir)
    for cand in (root / "mitdb", root):
        if (cand / "100.hea").is_file() or (cand / "RECORDS").is_file():
            return cand
    raise DataError(
        f"expected MIT-BIH records (100.hea, ...), got none in {root}/mitdb; "
        "run `medtorch data fetch mitdb` or point --data-dir at them"
    )


def select_lead(sig_names: Sequence[str], lead: str) -> tuple[int, str]:
    """Index and name of ``lead``, else of the first channel (102/104 have no MLII: V5)."""
    names = list(sig_names)
    i = names.index(lead) if lead in names else 0
    return i, names[i]


def rr_features(beat_samples: np.ndarray, fs_hz: float, n_local: int = 10) -> np.ndarray:
    """RR features (seconds) of every beat, (N, 4): previous, next, local and record mean.

    ``beat_samples``: sorted sample indices of ALL beats of a record (any beat class).
    The local mean is over the ``n_local`` RR intervals ending at the beat (fewer at the
    start). The first beat's previous RR is its next RR and vice versa for the last beat.

    >>> rr_features(np.array([0, 360, 720, 1260]), 360.0, n_local=2)[:, :3].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.5, 1.0], [1.5, 1.5, 1.25]]
    """
    s = np.asarray(beat_samples, dtype=np.float64)
    n = len(s)
    if n < 2:
        return np.zeros((n, 4), dtype=np.float32)
    rr = np.diff(s) / fs_hz  # (N-1,) interval i is between beats i and i+1
    prev = np.concatenate([rr[:1], rr])
    nxt = np.concatenate([rr, rr[-1:]])
    csum = np.concatenate([[0.0], np.cumsum(prev)])
    lo = np.maximum(np.arange(n) + 1 - n_local, 0)
    local = (csum[1:] - csum[lo]) / (np.arange(n) + 1 - lo)
    rec = np.full(n, rr.mean())
    return np.stack([prev, nxt, local, rec], axis=1).astype(np.float32)


def window_bounds(window_s: Sequence[float], fs_hz: float) -> tuple[int, int]:
    """Samples before and after the R peak of a beat window (the R peak is sample n_before)."""
    if len(window_s) != 2 or min(window_s) < 0 or sum(window_s) <= 0:
        raise ConfigError(
            f"expected window_s = (seconds before, seconds after) >= 0, got "
            f"{list(window_s)} in task.params.window_s; e.g. [0.25, 0.45]"
        )
    return round(window_s[0] * fs_hz), round(window_s[1] * fs_hz)


def patient_relative(x: np.ndarray, rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express the beats of ONE record relative to that record (no labels used).

    Beats of an unseen patient differ from the training patients' in amplitude, axis and
    heart rate far more than an ectopic beat differs from that patient's own normal beats,
    and normal beats are the vast majority of every record. So each beat is compared with
    its record: ``x`` (K, 1, T) becomes (K, 2, T) = [beat, beat - record median beat], both
    with the window's median removed and divided by the median beat's peak-to-peak
    amplitude; ``rr`` (K, 4) seconds (:func:`rr_features`) becomes the
    :data:`PATIENT_RR_FEATURES` (K, 24): log ratios of the previous/next/local RR to the
    record mean RR, previous to next, previous and next to the mean RR of the
    +-:data:`PATIENT_CONTEXT_BEATS` surrounding beats, and the rhythm's irregularity there
    (5 x median |successive difference of log RR|). The references are means, not medians:
    where premature beats outnumber normal ones (MIT-BIH 232: 1,382 APCs, 398 normal beats
    after long pauses) the median RR is the premature interval and would hide them.
    Last, the previous-RR of the +-:data:`RR_SEQUENCE_BEATS` neighbours over the record mean,
    a short rhythm strip that tells a bimodal rhythm (ectopic runs between pauses) from the
    chaotic one of atrial fibrillation, which one irregularity number cannot. Uses the whole record, as a cardiologist
    reading the strip would; :mod:`medtorch.ecg.predict` does the same on a new record.

    >>> x = np.zeros((5, 1, 5), np.float32); x[:, 0, 1] = 1.0; x[2, 0, 2] = 1.0
    >>> rr = np.array([[1.0, 1.0, 1.0, 0.9]] * 5); rr[2, :2] = [0.5, 1.5]
    >>> xp, rp = patient_relative(x, rr)
    >>> xp.shape, rp.shape, xp[2, 1].tolist(), xp[0, 1].tolist()
    ((5, 2, 5), (5, 24), [0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    >>> round(float(rp[2, 3]), 3)  # log(0.5 / 1.5)
    -1.099
    """
    from scipy.ndimage import median_filter, uniform_filter1d

    k = len(x)
    if k == 0:
        return np.zeros((0, 2, x.shape[-1]), np.float32), np.zeros((0, N_PATIENT_RR), np.float32)
    b = x[:, 0, :].astype(np.float64)
    b = b - np.median(b, axis=1, keepdims=True)  # per-window baseline
    med = np.median(b, axis=0)
    scale = max(float(np.ptp(med)), 1e-6)
    xp = np.stack([b / scale, (b - med) / scale], axis=1).astype(np.float32)
    r = np.clip(rr.astype(np.float64), 1e-3, None)
    prev, nxt, local = r[:, 0], r[:, 1], r[:, 2]
    rec = float(np.mean(prev))
    width = 2 * PATIENT_CONTEXT_BEATS + 1
    centred = uniform_filter1d(prev, width, mode="nearest")
    lp = np.log(prev)
    # median, not mean: AF is irregular at every beat, while a few long pauses between
    # regular runs (sinus arrest, blocked APCs) must not make a rhythm look fibrillating
    irregular = 5.0 * median_filter(np.abs(np.diff(lp, prepend=lp[0])), size=width, mode="nearest")
    feats = [np.log(prev / rec), np.log(nxt / rec), np.log(local / rec), np.log(prev / nxt),
             np.log(prev / centred), np.log(nxt / centred), irregular]  # fmt: skip
    offsets = np.arange(-RR_SEQUENCE_BEATS, RR_SEQUENCE_BEATS + 1)
    neighbours = np.clip(np.arange(k)[:, None] + offsets[None, :], 0, k - 1)  # (K, 17)
    strip = np.log(prev[neighbours] / rec)
    return xp, np.concatenate([np.stack(feats, axis=1), strip], axis=1).astype(np.float32)


def robust_z(v: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """(v - median) / (1.4826 MAD) of one record's values, clipped to +-:data:`MORPH_Z_CLIP`;
    median and MAD of ``v[ref]`` when a reference mask is given.

    >>> robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0])).round(2).tolist()
    [-1.35, -0.67, 0.0, 0.67, 20.0]
    """
    r = v if ref is None else v[ref]
    med = np.median(r)
    mad = 1.4826 * np.median(np.abs(r - med)) + 1e-6
    return np.clip((v - med) / mad, -MORPH_Z_CLIP, MORPH_Z_CLIP)


def morphology_measures(
    xp: np.ndarray, fs_hz: float, r_index: int, ref: np.ndarray | None = None
) -> np.ndarray:
    """The :data:`MORPH_FEATURES` measures (K, 6) of beats, before z-scoring, from
    :func:`patient_relative`'s ``xp`` (K, 2, T) = [beat, beat - median beat], R peak at
    sample ``r_index``; against the median of the ``ref`` beats instead, given a mask.

    A premature atrial beat's P wave is early, inverted, or hidden in the previous T wave,
    so its P region differs from the patient's usual one; how much a region differs is
    itself patient-specific (noise, P amplitude), so each measure is a robust z-score within
    the record (:func:`robust_z`), as the RR features are ratios to the record's rhythm.
    Raw, the same measures hurt a gate on new patients; z-scored, they help: chosen by
    leave-one-record-out CV inside DS1 (benchmarks/ecg_gate_morphology.py).
    """
    n = xp.shape[-1]

    def region(bounds: tuple[float, float]) -> slice:
        a, b = (r_index + round(t * fs_hz) for t in bounds)
        if a < 0 or b > n:
            raise ConfigError(
                f"expected a beat window covering {P_REGION_S[0]} to {T_REGION_S[1]} s "
                f"around the R peak for morph_features, got {-r_index / fs_hz:.3f} to "
                f"{(n - r_index) / fs_hz:.3f} s in task.params.window_s; widen it, e.g. "
                "[0.25, 0.45]"
            )
        return slice(a, b)

    def corr(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u, v = u - u.mean(1, keepdims=True), v - v.mean(1, keepdims=True)
        return (u * v).sum(1) / np.sqrt((u * u).sum(1) * (v * v).sum(1) + 1e-9)

    beat, diff = xp[:, 0].astype(np.float64), xp[:, 1].astype(np.float64)
    if ref is not None:
        diff = beat - np.median(beat[ref], axis=0)
    med = beat - diff  # the record's reference (median) beat, on every row
    p, q, t = region(P_REGION_S), region(QRS_REGION_S), region(T_REGION_S)
    feats = [
        corr(beat[:, p], med[:, p]),
        np.sqrt((diff[:, p] ** 2).mean(1)),
        np.ptp(beat[:, p], 1) / (np.ptp(med[:, p], 1) + 1e-3),
        corr(beat[:, q], med[:, q]),
        np.sqrt((diff[:, q] ** 2).mean(1)),
        np.sqrt((diff[:, t] ** 2).mean(1)),
    ]
    return np.stack(feats, 1)


def morphology_features(
    xp: np.ndarray, fs_hz: float, r_index: int, ref: np.ndarray | None = None
) -> np.ndarray:
    """:data:`MORPH_FEATURES` (K, 6) of ONE record's beats: :func:`morphology_measures`,
    each a robust z-score within the record (:func:`robust_z`); with a mask ``ref``, both
    against the ``ref`` beats only (:func:`morph_reference_mask`).

    >>> xp = np.zeros((4, 2, 100), np.float32); xp[:, 0] = np.sin(np.arange(100) / 3)
    >>> xp[3, 1, 5:12] = 0.5; xp[3, 0] += xp[3, 1]
    >>> f = morphology_features(xp, 100.0, 30); f.shape, bool(f[3, 1] > 5), f[:3, 1].tolist()
    ((4, 6), True, [0.0, 0.0, 0.0])
    """
    if len(xp) == 0:
        return np.zeros((0, len(MORPH_FEATURES)), np.float32)
    m = morphology_measures(xp, fs_hz, r_index, ref)
    return np.stack([robust_z(c, ref) for c in m.T], 1).astype(np.float32)


def morph_reference_mask(reference: str, log_prev_over_record: np.ndarray) -> np.ndarray | None:
    """The reference beats of :data:`MORPH_REFERENCES` ``reference`` (None: all beats).

    >>> morph_reference_mask("on_time", np.log(np.r_[np.full(12, 1.2), np.full(30, 0.9)])).sum()
    np.int64(12)
    >>> morph_reference_mask("on_time", np.zeros(5)) is None  # too few beats on time
    True
    >>> lp = np.log(np.r_[np.full(12, 1.2), np.full(40, 0.9)])  # 12 of 52 on time: 0.23
    >>> morph_reference_mask("auto", lp).sum(), morph_reference_mask("auto", lp[:40]) is None
    (np.int64(12), True)
    """
    _check_reference(reference)
    if reference == "all":
        return None
    ref = log_prev_over_record >= 0.0
    if reference == "auto" and not (len(ref) and ref.mean() < AUTO_ON_TIME_BELOW):
        return None
    return ref if ref.sum() >= MIN_REFERENCE_BEATS else None


def _check_reference(reference: str) -> None:
    if reference not in MORPH_REFERENCES:
        raise ConfigError(
            fmt(" or ".join(MORPH_REFERENCES), reference, "task.params.morph_reference",
                "pick one")
        )  # fmt: skip


def _check_morph(patient_norm: bool, morph_features: bool, reference: str) -> None:
    _check_reference(reference)
    if morph_features and not patient_norm:
        raise ConfigError(
            "expected task.params.patient_norm: true with morph_features (they are "
            "relative to the record), got patient_norm false; set both or neither"
        )


def beat_inputs(
    lead: np.ndarray,
    fs_hz: float,
    beat_samples: np.ndarray,
    window_s: Sequence[float],
    patient_norm: bool = False,
    morph_features: bool = False,
    morph_reference: str = "all",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows and RR features of beats of one conditioned lead (one record).

    Returns ``x`` (K, 1, T) float32, ``rr`` (K, 4) float32 and ``kept`` (K,) indices into
    ``beat_samples`` of the beats whose window lies inside the record. RR features use all
    beats (computed before dropping any). ``patient_norm``: :func:`patient_relative`
    inputs instead, ``x`` (K, 2, T) and ``rr`` (K, 24); ``morph_features`` (needs
    ``patient_norm``): rr (K, 30), the :data:`MORPH_FEATURES` after the 24, against the
    ``morph_reference`` beats (:func:`morph_reference_mask`).
    """
    _check_morph(patient_norm, morph_features, morph_reference)
    before, after = window_bounds(window_s, fs_hz)
    s = np.asarray(beat_samples, dtype=np.int64)
    rr = rr_features(s, fs_hz)
    kept = np.flatnonzero((s - before >= 0) & (s + after <= lead.shape[-1]))
    idx = s[kept, None] + np.arange(-before, after)[None, :]  # (K, T)
    x = lead[idx][:, None, :].astype(np.float32)  # (K, 1, T)
    if patient_norm:
        xp, rp = patient_relative(x, rr[kept])
        if morph_features:
            ref = morph_reference_mask(morph_reference, rp[:, 0])
            rp = np.concatenate([rp, morphology_features(xp, fs_hz, before, ref)], axis=1)
        return xp, rp, kept
    return x, rr[kept], kept


def prepare_lead(lead: np.ndarray, fs_in_hz: float, fs_hz: float, filter: bool) -> np.ndarray:
    """Condition one lead as for training: filter at the native rate, then resample."""
    if filter:  # filter the whole lead once, at the native rate
        lead = clean_ecg(lead, fs_in_hz)
    if fs_hz != fs_in_hz:
        lead = resample(lead, fs_in_hz, fs_hz)
    return lead


def _read_lead(stem: Path, lead: str, fs_hz: float, filter: bool) -> tuple[np.ndarray, float, str]:
    rec = read_record(stem)
    i, used = select_lead(rec.sig_names, lead)
    return prepare_lead(rec.signal[i], rec.fs_hz, fs_hz, filter), rec.fs_hz, used


def _record_beats(
    args: tuple[Path, str, float, tuple[float, float], bool, bool, bool, str],
) -> dict[str, Any]:
    stem, lead, fs_hz, window_s, filter, patient_norm, morph, reference = args
    sig, fs_in, used = _read_lead(stem, lead, fs_hz, filter)
    ann = read_annotations(stem, fs_hz=fs_in)
    is_beat = np.isin(ann.symbol, list(BEAT_SYMBOLS))
    samples = np.round(ann.sample[is_beat] * (fs_hz / fs_in)).astype(np.int64)
    symbols = ann.symbol[is_beat]
    x, rr, kept = beat_inputs(sig, fs_hz, samples, window_s, patient_norm, morph, reference)
    rhythm_af = af_indicator(ann.symbol, ann.sample, ann.aux_note, int(ann.sample.max()) + 1)
    in_af = rhythm_af[ann.sample[is_beat][kept]]
    classes = np.array(
        [AAMI_CLASSES.index(AAMI_MAP[s]) if s in AAMI_MAP else -1 for s in symbols[kept]],
        dtype=np.int64,
    )
    labelled = classes >= 0
    return {
        "x": x[labelled],
        "rr": rr[labelled],
        "y": classes[labelled],
        "sample": ann.sample[is_beat][kept][labelled],
        "in_af": in_af[labelled],
        "lead": used,
        "n_beats": int(is_beat.sum()),
        "n_non_beat": int((~is_beat).sum()),
        "n_off_edge": int(len(samples) - len(kept)),
        "n_no_aami": int((~labelled).sum()),
    }


def extract_beats(
    record_dir: Path | str,
    records: Sequence[str],
    lead: str = "MLII",
    fs_hz: float = 360.0,
    window_s: Sequence[float] = (0.25, 0.45),
    filter: bool = True,
    n_workers: int | None = None,
    patient_norm: bool = False,
    morph_features: bool = False,
    morph_reference: str = "all",
) -> dict[str, Any]:
    """Beat windows, RR features and AAMI labels of ``records`` (vectorised per record).

    Default window: 0.25 s before to 0.45 s after the R peak (252 samples at 360 Hz),
    long enough for the P wave (PR <= 0.2 s) and the T wave (QT ~0.4 s) that separate
    S and V beats from N. ``filter``: baseline removal + 60 Hz notch on the whole lead.
    ``patient_norm``: inputs relative to each record (:func:`patient_relative`);
    ``morph_features``: plus :func:`morphology_features` after the RR features, against
    the ``morph_reference`` beats.
    Returns arrays ``x``, ``rr``, ``y``, ``record``, ``sample`` and per-record ``stats``.
    """
    record_dir = Path(record_dir)
    window = (float(window_s[0]), float(window_s[1]))
    window_bounds(window, fs_hz)
    _check_morph(patient_norm, morph_features, morph_reference)  # here, not in a worker
    jobs = [(record_dir / str(r), lead, float(fs_hz), window, filter, patient_norm,
             morph_features, morph_reference) for r in records]  # fmt: skip
    workers = n_workers if n_workers is not None else min(2, os.cpu_count() or 1, len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_record_beats, jobs))
    else:
        results = [_record_beats(j) for j in jobs]
    before, after = window_bounds(window, fs_hz)
    empty_x = np.zeros((0, 2 if patient_norm else 1, before + after), np.float32)
    return {
        "x": np.concatenate([r["x"] for r in results]) if results else empty_x,
        "rr": np.concatenate([r["rr"] for r in results])
        if results
        else np.zeros(
            (0, (N_PATIENT_RR + len(MORPH_FEATURES) * morph_features) if patient_norm else 4)
        ),
        "y": np.concatenate([r["y"] for r in results]) if results else np.zeros(0, np.int64),
        "record": np.concatenate(
            [np.full(len(r["y"]), str(rec)) for rec, r in zip(records, results)]
        )
        if results
        else np.zeros(0, str),
        "sample": np.concatenate([r["sample"] for r in results]) if results else np.zeros(0),
        "in_af": np.concatenate([r["in_af"] for r in results]) if results else np.zeros(0, bool),
        "stats": {
            str(rec): {k: v for k, v in r.items() if k not in ("x", "rr", "y", "sample", "in_af")}
            for rec, r in zip(records, results)
        },
    }


def _check_records(records: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    recs = [str(r) for r in (records if records is not None else default)]
    bad = [r for r in recs if r not in ALL_RECORDS]
    if bad:
        raise ConfigError(
            f"expected MIT-BIH record names such as '100', got {bad} in "
            "task.params.records; use names from the database's RECORDS file"
        )
    return recs


@register_task("mitdb_aami_beats")
def mitdb_aami_beats(
    data_dir: Path | None,
    records: Sequence[str] | None = None,
    lead: str = "MLII",
    fs_hz: float = 360.0,
    window_s: Sequence[float] = (0.25, 0.45),
    filter: bool = True,
    exclude_paced: bool = True,
    rr: bool = True,
    patient_norm: bool = False,
    morph_features: bool = False,
    morph_reference: str = "all",
    train_on_af_beats: bool = True,
) -> ArrayDataset:
    """MIT-BIH beats in 5 AAMI classes (N, S, V, F, Q); inputs x (N,1,T) and rr (N,4).

    ``rr=False`` leaves out the ``rr`` input, for models that take the waveform only
    (e.g. ``lab_cnn``): the model is called as ``model(*inputs.values())``.
    ``patient_norm=True``: each beat relative to its own record (:func:`patient_relative`),
    x (N, 2, T) = [beat, beat - record median beat] and rr (N, 24) record-relative RR.
    ``morph_features=True`` (with patient_norm): rr (N, 30), the 24 then
    :data:`MORPH_FEATURES`, the beat's shape against its record's (robust z-scores), whose
    usual beat is the median of all beats or (``morph_reference="on_time"``) of the beats
    that are not premature (:func:`morph_reference_mask`).
    ``train_on_af_beats=False``: beats inside (AFIB/(AFL rhythm episodes are kept for
    validation and test (they are scored, labelled N as AAMI does) but left out of
    training, so the network does not learn that short, irregular RR intervals are normal.
    """
    root = mitdb_dir(data_dir)
    recs = _check_records(records, ALL_RECORDS)
    used = [r for r in recs if not (exclude_paced and r in PACED)]
    n_paced = sum(
        int(np.isin(read_annotations(root / r).symbol, list(BEAT_SYMBOLS)).sum())
        for r in recs
        if r not in used
    )
    out = extract_beats(root, used, lead, fs_hz, window_s, filter, patient_norm=patient_norm,
                        morph_features=morph_features, morph_reference=morph_reference)  # fmt: skip
    stats = out["stats"]
    counts = np.bincount(out["y"], minlength=len(AAMI_CLASSES))
    cohort = {
        "records": len(used),
        "beats_read": sum(s["n_beats"] for s in stats.values()),
        **{f"beats_{c}": int(k) for c, k in zip(AAMI_CLASSES, counts)},
        "dropped_non_beat_symbol": sum(s["n_non_beat"] for s in stats.values()),
        "dropped_window_off_edge": sum(s["n_off_edge"] for s in stats.values()),
        "dropped_beat_without_aami_class": sum(s["n_no_aami"] for s in stats.values()),
        "dropped_paced_record_excluded": n_paced,
        "records_paced_excluded": len(recs) - len(used),
        "beats_in_af_rhythm": int(out["in_af"].sum()),
    }
    fallback = {r: s["lead"] for r, s in stats.items() if s["lead"] != lead}
    ids = np.char.add(np.char.add(out["record"], ":"), out["sample"].astype(str))
    return ArrayDataset(
        inputs={"x": out["x"], **({"rr": out["rr"].astype(np.float32)} if rr else {})},
        y=out["y"],
        groups=out["record"],
        class_names=list(AAMI_CLASSES),
        sample_ids=ids,
        meta={
            "source": "mitdb",
            "task": "mitdb_aami_beats",
            "group_unit": "record",
            "sfreq_hz": float(fs_hz),
            "lead": lead,
            "lead_fallback": fallback,
            "window_s": [float(w) for w in window_s],
            "filter": bool(filter),
            "rr_features": (
                list(PATIENT_RR_FEATURES) + list(MORPH_FEATURES) * morph_features
                if patient_norm
                else list(RR_FEATURES)
            )
            if rr
            else [],
            "patient_norm": bool(patient_norm),
            **({"morph_reference": morph_reference} if morph_features else {}),
            **({} if train_on_af_beats else {"train_exclude_ids": ids[out["in_af"]].tolist()}),
            "cohort": cohort,
            "intra_patient_warning": INTRA_PATIENT_WARNING,
        },
    )


@register_protocol("mitdb_ds1_ds2")
def mitdb_ds1_ds2(ds: ArrayDataset, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """de Chazal 2004 inter-patient split: train DS1, test DS2, valid = whole DS1 records.

    The number of validation records is ``round(len(DS1) * r_valid / (r_train + r_valid))``
    (4 of 22 with the default ratios); records are drawn with ``cfg.seed``, preferring a
    draw that holds S and V beats in both train and valid. ``cfg.valid_groups`` names the
    validation records instead (DS1 records only: a DS2 record there would leak the test).
    """
    groups = np.asarray(ds.groups).astype(str)
    ds1 = [r for r in DS1 if r in set(groups)]
    test = np.flatnonzero(np.isin(groups, DS2))
    r_train, r_valid, _ = cfg.ratios
    n_valid = max(1, round(len(ds1) * r_valid / max(r_train + r_valid, 1e-12)))
    if len(ds1) < 2 or len(test) == 0:
        raise SplitError(
            f"expected DS1 and DS2 records, got {len(ds1)} DS1 records and "
            f"{len(np.unique(groups[test]))} DS2 records in the dataset; "
            "build mitdb_aami_beats with all records for split.protocol=mitdb_ds1_ds2"
        )
    rng = np.random.default_rng(cfg.seed)
    want = [ds.class_names.index(c) for c in ("S", "V") if c in ds.class_names]
    draw: list[str] = []
    if cfg.valid_groups is not None:
        draw = sorted(str(r) for r in cfg.valid_groups)
        bad = [r for r in draw if r not in ds1]
        if not draw or bad or len(draw) >= len(ds1):
            raise SplitError(
                f"expected 1 to {len(ds1) - 1} DS1 records present in the dataset, got "
                f"{draw} in split.valid_groups ({bad or 'too many'} not allowed); validation "
                f"must come from DS1 ({', '.join(ds1)}), never from the DS2 test records"
            )
    for _ in range(0 if draw else 200):
        draw = sorted(rng.choice(ds1, size=min(n_valid, len(ds1) - 1), replace=False).tolist())
        v = np.isin(groups, draw)
        t = np.isin(groups, ds1) & ~v
        if all((ds.y[v] == c).any() and (ds.y[t] == c).any() for c in want):
            break
    valid = np.flatnonzero(np.isin(groups, draw))
    train = np.flatnonzero(np.isin(groups, ds1) & ~np.isin(groups, draw))
    return {"train": train, "valid": valid, "test": test}


# ---- rhythm: AF windows ---------------------------------------------------------------


def af_indicator(symbol: np.ndarray, sample: np.ndarray, aux: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool: True where the current rhythm (last '+' annotation) is AFIB or AFL."""
    is_rhythm = (symbol == "+") & (aux != "")
    starts = sample[is_rhythm].clip(0, n)
    af = np.isin(aux[is_rhythm], list(AF_RHYTHMS))
    bounds = np.concatenate([starts, [n]])
    out = np.zeros(n, dtype=bool)
    # rhythm before the first rhythm annotation is unknown: counted as not AF
    out[bounds[0] :] = np.repeat(af, np.diff(bounds))
    return out


def af_window_inputs(
    lead: np.ndarray, fs_hz: float, window_s: float, target_fs_hz: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of a conditioned lead: ``x`` (W, 1, T) and start samples (W,).

    Starts are at ``fs_hz`` (the lead's rate); ``x`` is at ``target_fs_hz`` when given.
    """
    n_win = round(window_s * fs_hz)
    n = lead.shape[-1] // n_win
    if target_fs_hz is not None and target_fs_hz != fs_hz:
        lead = resample(lead, fs_hz, target_fs_hz)  # whole lead: no edge effects per window
        n_out = round(window_s * target_fs_hz)
        n = min(n, lead.shape[-1] // n_out)
    else:
        n_out = n_win
    x = lead[: n * n_out].reshape(n, 1, n_out)  # (W, 1, T)
    return x.astype(np.float32), np.arange(n, dtype=np.int64) * n_win


AF_RR_FEATURES = ["beats_per_s", "log_median_rr", "cv_rr", "rmssd_over_mean",
                  "median_abs_diff_over_median", "pnn50", "frac_off_median_15pct",
                  "frac_rr_defined"]  # fmt: skip


def af_rr_features(
    beat_samples: np.ndarray, fs_hz: float, starts: np.ndarray, n_win: int
) -> np.ndarray:
    """Rhythm features of each window from its RR intervals, (W, 8): :data:`AF_RR_FEATURES`.

    The classic signs of atrial fibrillation are in the RR series ("irregularly
    irregular"): spread (coefficient of variation, RMSSD / mean RR, median |successive
    difference| / median RR), pNN50 and the share of intervals more than 15 % off the
    window's median, beside the rate. An interval belongs to the window where its closing
    beat lies. Windows with fewer than 3 intervals (pauses, noise) get 0 spreads and
    ``frac_rr_defined`` 0, so the model can tell them apart. ``beat_samples``: sorted
    indices of all beats of the record, at ``fs_hz`` (the rate of ``starts``).

    >>> beats = np.array([0, 100, 200, 300, 400, 500, 560, 700, 760, 900])  # regular, then not
    >>> f = af_rr_features(beats, 100.0, np.array([0, 500]), 500)
    >>> [round(float(v), 2) for v in f[:, 2]], f[:, 5].tolist()  # cv_rr, pnn50
    ([0.0, 0.36], [0.0, 1.0])
    """
    s = np.asarray(beat_samples, dtype=np.int64)
    rr = np.diff(s) / fs_hz  # interval j closes at beat j + 1
    closes = s[1:]
    out = np.zeros((len(starts), len(AF_RR_FEATURES)), dtype=np.float64)
    lo = np.searchsorted(closes, starts, side="left")
    hi = np.searchsorted(closes, starts + n_win, side="left")
    n_beats = np.searchsorted(s, starts + n_win) - np.searchsorted(s, starts)
    out[:, 0] = n_beats / (n_win / fs_hz)
    for w, (a, b) in enumerate(zip(lo, hi)):
        r = rr[a:b]
        if len(r) < 3:
            out[w, 1] = np.log(n_win / fs_hz)  # no rhythm in the window: as slow as it gets
            continue
        d = np.abs(np.diff(r))
        med = float(np.median(r))
        out[w, 1:] = [np.log(med), r.std() / r.mean(), np.sqrt(np.mean(d**2)) / r.mean(),
                      np.median(d) / med, np.mean(d > 0.05),
                      np.mean(np.abs(r - med) > 0.15 * med), 1.0]  # fmt: skip
    return out.astype(np.float32)


def _record_af(args: tuple[Path, str, float, float | None, bool, bool]) -> dict[str, Any]:
    stem, lead, window_s, target_fs_hz, filter, with_rr = args
    rec = read_record(stem)
    i, used = select_lead(rec.sig_names, lead)
    sig = prepare_lead(rec.signal[i], rec.fs_hz, rec.fs_hz, filter)
    x, starts = af_window_inputs(sig, rec.fs_hz, window_s, target_fs_hz)
    ann = read_annotations(stem, fs_hz=rec.fs_hz)
    af = af_indicator(ann.symbol, ann.sample, ann.aux_note, rec.n_samples)
    n_win = round(window_s * rec.fs_hz)
    frac = af[: len(starts) * n_win].reshape(len(starts), n_win).mean(axis=1)
    out = {"x": x, "start": starts, "frac": frac, "lead": used, "fs_hz": rec.fs_hz}
    if with_rr:
        beats = ann.sample[np.isin(ann.symbol, list(BEAT_SYMBOLS))]
        out["rr"] = af_rr_features(beats, rec.fs_hz, starts, n_win)
    return out


@register_task("mitdb_af_windows")
def mitdb_af_windows(
    data_dir: Path | None,
    records: Sequence[str] | None = None,
    window_s: float = 10.0,
    target_fs_hz: float | None = 125.0,
    lead: str = "MLII",
    filter: bool = True,
    rr: bool = False,
    waveform: bool = True,
) -> ArrayDataset:
    """MIT-BIH non-overlapping rhythm windows, AF/AFL vs other; x (N, 1, T).

    ``rr=True`` adds the input ``rr`` (N, 8), the window's RR-rhythm features
    (:func:`af_rr_features`) from the reference beat annotations; ``medtorch predict``
    takes the beats from the record's annotations too, or finds them with a QRS detector.
    ``waveform=False`` (with ``rr=True``) leaves the signal out: ``x`` is then the (N, 8)
    RR features alone, for a feature model such as ``mlp``.

    Label rule: a window is AF when >= 50 % of its samples lie in an (AFIB or (AFL rhythm
    episode (majority vote, so every window keeps a label and the episode boundaries are
    resolved to window precision); windows with 0 < AF fraction < 1 are counted in the
    cohort as ``windows_mixed``. The tail shorter than one window is dropped.
    """
    if window_s <= 0:
        raise ConfigError(
            f"expected window_s > 0, got {window_s} in task.params.window_s; e.g. 10.0"
        )
    if not waveform and not rr:
        raise ConfigError(
            "expected task.params.rr=true when task.params.waveform=false, got neither "
            "input; set rr: true (RR features only) or waveform: true"
        )
    root = mitdb_dir(data_dir)
    recs = _check_records(records, ALL_RECORDS)
    jobs = [(root / r, lead, float(window_s), target_fs_hz, filter, rr) for r in recs]
    if len(jobs) > 1 and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(2) as pool:
            res = list(pool.map(_record_af, jobs))
    else:
        res = [_record_af(j) for j in jobs]
    frac = np.concatenate([r["frac"] for r in res])
    y = (frac >= 0.5).astype(np.int64)
    rec_col = np.concatenate([np.full(len(r["start"]), rec) for rec, r in zip(recs, res)])
    starts = np.concatenate([r["start"] for r in res])
    af_per_record = {rec: int((r["frac"] >= 0.5).sum()) for rec, r in zip(recs, res)}
    cohort = {
        "records": len(recs),
        "windows": len(y),
        "windows_af": int(y.sum()),
        "windows_other": int((y == 0).sum()),
        "windows_mixed": int(((frac > 0) & (frac < 1)).sum()),
        "records_with_af": sum(1 for v in af_per_record.values() if v),
    }
    rr_input = {"rr": np.concatenate([r["rr"] for r in res])} if rr else {}
    inputs = (
        {"x": np.concatenate([r["x"] for r in res]), **rr_input}
        if waveform
        else {"x": rr_input["rr"]}
    )
    return ArrayDataset(
        inputs=inputs,
        y=y,
        groups=rec_col,
        class_names=["other", "af"],
        sample_ids=np.char.add(np.char.add(rec_col, ":"), starts.astype(str)),
        meta={
            "source": "mitdb",
            "task": "mitdb_af_windows",
            "group_unit": "record",
            "sfreq_hz": float(target_fs_hz or res[0]["fs_hz"]),
            "window_s": float(window_s),
            "lead": lead,
            "filter": bool(filter),
            "label_rule": ">= 50% of the window in (AFIB/(AFL",
            "rr_features": list(AF_RR_FEATURES) if rr else [],
            "waveform": bool(waveform),
            "af_windows_per_record": {k: v for k, v in af_per_record.items() if v},
            "cohort": cohort,
            "intra_patient_warning": INTRA_PATIENT_WARNING,
        },
    )

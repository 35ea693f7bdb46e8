"""Beat features: RR intervals, the record-relative (patient-normalised) inputs, beat shape.

:func:`rr_features` gives the RR intervals of every beat in seconds; :func:`patient_relative`
expresses a record's beats and RR intervals against that record's own; and
:func:`morphology_features` measures how each beat's shape departs from the record's usual
beat, as robust z-scores within the record. No labels are used.
"""

from __future__ import annotations

import numpy as np

from medtorch.errors import ConfigError, fmt

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
# beats down to 232's mix 0.10-0.20; benchmarks/ecg/morph_reference.py), else "all"
# ("on_time" everywhere costs DS1 leave-one-record-out S F1 72.6 -> 57.8: in AF it takes
# the reference from the long-RR beats only).
MORPH_REFERENCES = ("all", "on_time", "auto")
MIN_REFERENCE_BEATS = 10
AUTO_ON_TIME_BELOW = 0.25
MORPH_Z_CLIP = 20.0


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
    leave-one-record-out CV inside DS1 (benchmarks/ecg/gate_morphology.py).
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


def check_morph(patient_norm: bool, morph_features: bool, reference: str) -> None:
    """ConfigError unless ``reference`` is one of :data:`MORPH_REFERENCES` and
    ``morph_features`` comes with ``patient_norm``."""
    _check_reference(reference)
    if morph_features and not patient_norm:
        raise ConfigError(
            "expected task.params.patient_norm: true with morph_features (they are "
            "relative to the record), got patient_norm false; set both or neither"
        )

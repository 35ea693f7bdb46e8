"""AF rhythm windows: labels from the rhythm annotations, windows of a lead, RR-rhythm features.

:func:`af_indicator` marks the samples inside (AFIB/(AFL episodes; :func:`af_window_inputs`
cuts a conditioned lead into non-overlapping windows; :func:`af_rr_features` describes each
window's rhythm from its RR intervals. Shared with :mod:`medtorch.ecg.predict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.signal import resample
from medtorch.data.sources.wfdb_reader import (
    check_annotation_coverage,
    read_annotations,
    read_record,
)
from medtorch.ecg.records import BEAT_SYMBOLS, prepare_lead, select_lead

AF_RHYTHMS = frozenset({"(AFIB", "(AFL"})


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


def record_af_windows(args: tuple[Path, str, float, float | None, bool, bool]) -> dict[str, Any]:
    """AF windows of one record: the job ``(stem, lead, window_s, target_fs_hz, filter, with_rr)``
    of :func:`medtorch.data.tasks.mitdb.mitdb_af_windows`, run in a worker process."""
    stem, lead, window_s, target_fs_hz, filter, with_rr = args
    rec = read_record(stem)
    i, used = select_lead(rec.sig_names, lead)
    sig = prepare_lead(rec.signal[i], rec.fs_hz, rec.fs_hz, filter)
    x, starts = af_window_inputs(sig, rec.fs_hz, window_s, target_fs_hz)
    ann = read_annotations(stem, fs_hz=rec.fs_hz)
    check_annotation_coverage(ann.sample, rec.n_samples, rec.fs_hz, f"{stem}.atr")
    af = af_indicator(ann.symbol, ann.sample, ann.aux_note, rec.n_samples)
    n_win = round(window_s * rec.fs_hz)
    frac = af[: len(starts) * n_win].reshape(len(starts), n_win).mean(axis=1)
    out = {"x": x, "start": starts, "frac": frac, "lead": used, "fs_hz": rec.fs_hz}
    if with_rr:
        beats = ann.sample[np.isin(ann.symbol, list(BEAT_SYMBOLS))]
        out["rr"] = af_rr_features(beats, rec.fs_hz, starts, n_win)
    return out

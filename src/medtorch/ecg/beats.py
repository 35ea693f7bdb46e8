"""Beats: AAMI classes of the beat symbols, beat windows and their RR features, per record.

:func:`beat_inputs` builds the inputs of one conditioned lead (shared with
:mod:`medtorch.ecg.predict`, so inference on a new record builds exactly the training
inputs); :func:`extract_beats` does it for MIT-BIH records with their AAMI labels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.sources.wfdb_reader import check_annotation_coverage, read_annotations
from medtorch.ecg.af import af_indicator
from medtorch.ecg.features import (
    MORPH_FEATURES,
    N_PATIENT_RR,
    check_morph,
    morph_reference_mask,
    morphology_features,
    patient_relative,
    rr_features,
)
from medtorch.ecg.records import BEAT_SYMBOLS, read_lead
from medtorch.errors import ConfigError

# AAMI EC57:1998/(R)2008 beat classes from WFDB beat symbols, as used by de Chazal,
# O'Dwyer & Reilly, IEEE TBME 51(7):1196-1206 (2004), Table I, for the symbols MIT-BIH uses;
# the three beat symbols of other PhysioNet databases follow EC57's classes: B (bundle
# branch block beat, unspecified) is N like L and R, n (supraventricular escape) is N like
# the atrial and nodal escapes e and j, r (R-on-T premature ventricular contraction) is V.
# "?" (beat not classified) has no AAMI class: training drops it and scoring counts it as
# unmapped (UNMAPPED), never a class. None of B, n, r, ? occurs in MIT-BIH.
AAMI_MAP: dict[str, str] = {
    "N": "N", "L": "N", "R": "N", "B": "N", "e": "N", "j": "N", "n": "N",  # normal, BBB, escapes
    "A": "S", "a": "S", "J": "S", "S": "S",  # supraventricular ectopic
    "V": "V", "r": "V", "E": "V",  # ventricular ectopic
    "F": "F",  # fusion of ventricular and normal
    "/": "Q", "f": "Q", "Q": "Q",  # paced, fusion of paced and normal, unclassifiable
}  # fmt: skip
AAMI_CLASSES = ["N", "S", "V", "F", "Q"]
UNMAPPED = frozenset(BEAT_SYMBOLS) - set(AAMI_MAP)  # beat symbols with no AAMI class: "?"


def window_bounds(window_s: Sequence[float], fs_hz: float) -> tuple[int, int]:
    """Samples before and after the R peak of a beat window (the R peak is sample n_before)."""
    if len(window_s) != 2 or min(window_s) < 0 or sum(window_s) <= 0:
        raise ConfigError(
            f"expected window_s = (seconds before, seconds after) >= 0, got "
            f"{list(window_s)} in task.params.window_s; e.g. [0.25, 0.45]"
        )
    return round(window_s[0] * fs_hz), round(window_s[1] * fs_hz)


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
    check_morph(patient_norm, morph_features, morph_reference)
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


def _record_beats(
    args: tuple[Path, str, float, tuple[float, float], bool, bool, bool, str],
) -> dict[str, Any]:
    stem, lead, fs_hz, window_s, filter, patient_norm, morph, reference = args
    sig, fs_in, used = read_lead(stem, lead, fs_hz, filter)
    ann = read_annotations(stem, fs_hz=fs_in)
    is_beat = np.isin(ann.symbol, list(BEAT_SYMBOLS))
    check_annotation_coverage(ann.sample[is_beat], round(len(sig) * fs_in / fs_hz), fs_in,
                              f"{stem}.atr")  # fmt: skip
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
    check_morph(patient_norm, morph_features, morph_reference)  # here, not in a worker
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

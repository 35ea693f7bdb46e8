"""MIT-BIH Arrhythmia Database tasks: AAMI beat classes and AF rhythm windows.

``mitdb_aami_beats``: one sample per annotated beat, a window of the (filtered) lead around
the R peak as ``x`` (N, 1, T) and RR-interval features as ``rr`` (N, 4), labelled with
the five AAMI EC57 classes. ``mitdb_af_windows``: fixed non-overlapping windows labelled
AF/AFL or other from the rhythm annotations. Named split ``mitdb_ds1_ds2`` is the
inter-patient protocol of de Chazal et al. (2004).

The beats, their features and the AF windows are built by the ECG slice
(:mod:`medtorch.ecg.records`, :mod:`medtorch.ecg.beats`, :mod:`medtorch.ecg.features`,
:mod:`medtorch.ecg.af`), which :mod:`medtorch.ecg.predict` shares, so inference on a new
record builds exactly the training inputs. This file only declares the tasks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.sources.wfdb_reader import read_annotations
from medtorch.data.splits import register_protocol
from medtorch.data.tasks.registry import InputKind, TaskExample, register_task
from medtorch.ecg.af import AF_RR_FEATURES, record_af_windows
from medtorch.ecg.beats import AAMI_CLASSES, extract_beats
from medtorch.ecg.features import MORPH_FEATURES, PATIENT_RR_FEATURES, RR_FEATURES
from medtorch.ecg.records import (
    ALL_RECORDS,
    BEAT_SYMBOLS,
    DS1,
    DS2,
    PACED,
    check_records,
    mitdb_dir,
)
from medtorch.errors import ConfigError, SplitError

INTRA_PATIENT_WARNING = "intra-patient split: beats of one record in train and test; optimistic"
PREDICT_OPTIONS = ("af_run", "lead", "detector")


def _predict(**kwargs: object) -> str:
    """The tasks' ``predictor``: a WFDB record into beats or AF windows (and episodes)."""
    from medtorch.ecg.predict import predict_run

    return predict_run(**kwargs)  # type: ignore[arg-type]


def write_example(folder: Path) -> dict[str, object]:
    """Two tiny synthetic two-lead records (100 from DS2, 101 from DS1; 40 s at 360 Hz)
    with N, S, V and one unclassifiable ``?`` beat, and an AF episode in 101."""
    import wfdb

    rng = np.random.default_rng(0)
    fs, n = 360, 360 * 40
    for name in ("100", "101"):
        t = np.arange(n) / fs
        sig = 0.05 * rng.standard_normal((n, 2))
        beats = np.arange(int(0.5 * fs), n - int(0.5 * fs), int(0.8 * fs))
        for b in beats:
            sig[b - 5 : b + 5, :] += 1.0  # an R-like spike
        sig[:, 0] += 0.1 * np.sin(2 * np.pi * 0.3 * t)
        symbols = ["N"] * len(beats)
        symbols[5], symbols[10], symbols[15], symbols[20] = "A", "V", "F", "?"
        wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig,
                    fmt=["212", "212"], write_dir=str(folder))  # fmt: skip
        rhythm = np.array([1, int(20 * fs)])
        sample = np.concatenate([beats, rhythm])
        sym = np.array([*symbols, "+", "+"])
        aux = np.array([""] * len(beats) + ["(N", "(AFIB" if name == "101" else "(N"])
        order = np.argsort(sample, kind="stable")
        wfdb.wrann(name, "atr", sample[order], symbol=list(sym[order]),
                   aux_note=list(aux[order]), fs=fs, write_dir=str(folder))  # fmt: skip
    return {"records": ["100", "101"]}


def _beat_inputs(rr: bool, **_: object) -> dict[str, InputKind]:
    return {"x": "signal", "rr": "features"} if rr else {"x": "signal"}


def _af_inputs(rr: bool, waveform: bool, **_: object) -> dict[str, InputKind]:
    if not waveform:
        return {"x": "features"}  # the window's RR features alone
    return {"x": "signal", "rr": "features"} if rr else {"x": "signal"}


@register_task(
    "mitdb_aami_beats",
    inputs=_beat_inputs,
    metrics=("classification", "aami"),
    predictor=_predict,
    options=PREDICT_OPTIONS,
    example=TaskExample(write_example, unlabelled=2),  # one "?" beat in each record
)
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
    recs = check_records(records, ALL_RECORDS)
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
        # the shared cohort form: beat annotations read, dropped by reason, kept per class
        "rows_read": sum(s["n_beats"] for s in stats.values()) + n_paced,
        "rows_dropped": {
            "no label (beat without an AAMI class)": sum(s["n_no_aami"] for s in stats.values()),
            "window off the record's edge": sum(s["n_off_edge"] for s in stats.values()),
            "paced record excluded": n_paced,
        },
        "class_counts": {c: int(k) for c, k in zip(AAMI_CLASSES, counts)},
    }
    fallback = {r: s["lead"] for r, s in stats.items() if s["lead"] != lead}
    rr_names = (
        (
            list(PATIENT_RR_FEATURES) + list(MORPH_FEATURES) * morph_features
            if patient_norm
            else list(RR_FEATURES)
        )
        if rr
        else []
    )
    ids = np.char.add(np.char.add(out["record"], ":"), out["sample"].astype(str))
    return ArrayDataset(
        inputs={"x": out["x"], **({"rr": out["rr"].astype(np.float32)} if rr else {})},
        y=out["y"],
        groups=out["record"],
        class_names=list(AAMI_CLASSES),
        sample_ids=ids,
        meta={
            "source": "mitdb",
            "dataset": "mitdb",
            "task": "mitdb_aami_beats",
            "group_unit": "record",
            "sfreq_hz": float(fs_hz),
            "lead": lead,
            "lead_fallback": fallback,
            "window_s": [float(w) for w in window_s],
            "filter": bool(filter),
            "rr_features": rr_names,
            "columns": {"rr": rr_names},
            "patient_norm": bool(patient_norm),
            **({"morph_reference": morph_reference} if morph_features else {}),
            **({} if train_on_af_beats else {"train_exclude_ids": ids[out["in_af"]].tolist()}),
            "cohort": cohort,
            "intra_patient_warning": INTRA_PATIENT_WARNING,
        },
    )


@register_protocol("mitdb_ds1_ds2", params=("valid_groups",))
def mitdb_ds1_ds2(ds: ArrayDataset, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """de Chazal 2004 inter-patient split: train DS1, test DS2, valid = whole DS1 records.

    The number of validation records is ``round(len(DS1) * r_valid / (r_train + r_valid))``
    (4 of 22 with the default ratios); records are drawn with ``cfg.seed``, preferring a
    draw that holds S and V beats in both train and valid. ``split.params.valid_groups``
    names the validation records instead (DS1 records only: a DS2 record there would leak the test).
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
    named = cfg.params.get("valid_groups")
    if named is not None:
        if not isinstance(named, list | tuple):
            raise SplitError(f"expected a list of DS1 record names, got {named!r} in "
                             "split.params.valid_groups; write e.g. ['108', '112']")  # fmt: skip
        draw = sorted(str(r) for r in named)  # YAML reads 108 as a number
        bad = [r for r in draw if r not in ds1]
        if not draw or bad or len(draw) >= len(ds1):
            raise SplitError(
                f"expected 1 to {len(ds1) - 1} DS1 records present in the dataset, got "
                f"{draw} in split.params.valid_groups ({bad or 'too many'} not allowed); validation "
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


@register_task(
    "mitdb_af_windows",
    inputs=_af_inputs,
    predictor=_predict,
    options=PREDICT_OPTIONS,
    example=TaskExample(lambda folder: {**write_example(folder), "window_s": 5.0}, unlabelled=0),
)
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
    recs = check_records(records, ALL_RECORDS)
    jobs = [(root / r, lead, float(window_s), target_fs_hz, filter, rr) for r in recs]
    if len(jobs) > 1 and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(2) as pool:
            res = list(pool.map(record_af_windows, jobs))
    else:
        res = [record_af_windows(j) for j in jobs]
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
        "rows_read": len(y),
        "rows_dropped": {},
        "class_counts": {"other": int((y == 0).sum()), "af": int(y.sum())},
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
            "dataset": "mitdb",
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

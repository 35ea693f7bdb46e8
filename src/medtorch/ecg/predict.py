"""Beat-by-beat AAMI classes and AF episodes for any WFDB record.

Beats come from the record's reference annotations (``.atr``) when they exist, otherwise
from a QRS detector (:data:`DETECTORS`: wfdb's gqrs, peak-corrected, or XQRS) run on the
chosen lead at the record's rate; each row says which (``source``). Windows and RR features
are built by the training code
(:func:`medtorch.ecg.beats.beat_inputs`, :func:`medtorch.ecg.af.af_window_inputs`),
so a model sees at inference exactly what it saw in training.

>>> rows, episodes = predict_record(model, norm.transform, "mitdb/100",
...                                 {"lead": "MLII", "fs_hz": 360})  # doctest: +SKIP
>>> rows[0]["predicted"], rows[0]["source"]  # doctest: +SKIP
('N', 'annotations')
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.data.sources.wfdb_reader import (
    check_annotation_coverage,
    read_annotations,
    read_header,
    read_record,
)
from medtorch.ecg.af import af_rr_features, af_window_inputs
from medtorch.ecg.beats import AAMI_CLASSES, AAMI_MAP, beat_inputs
from medtorch.ecg.records import BEAT_SYMBOLS, prepare_lead, select_lead
from medtorch.errors import ConfigError, fmt

log = logging.getLogger("medtorch")
Apply = Callable[[np.ndarray], np.ndarray]
BEAT_DEFAULTS: dict[str, Any] = {"lead": "MLII", "fs_hz": 360.0, "window_s": (0.25, 0.45),
                                 "filter": True, "patient_norm": False, "morph_features": False,
                                 "morph_reference": "all", "rr": True}  # fmt: skip
AF_DEFAULTS: dict[str, Any] = {"lead": "MLII", "window_s": 10.0, "target_fs_hz": 125.0,
                               "filter": True, "rr": False, "waveform": True}  # fmt: skip


def _stem(path: Path | str) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".hea", ".dat", ".atr", ".mat") else p


def predict_proba(
    model: torch.nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 4096
) -> np.ndarray:
    """Softmax probabilities of ``model(*inputs)``, batched, under ``torch.inference_mode``."""
    model.eval()
    device = next(iter(model.parameters()), torch.zeros(0)).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs[0]), batch_size):
            batch = [torch.as_tensor(a[i : i + batch_size], device=device) for a in inputs]
            out.append(torch.softmax(model(*batch).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# QRS detectors for records without beat annotations. "gqrs" (the default): wfdb's gqrs,
# each detection then moved to the R peak (largest deviation within 50 ms; gqrs marks the
# QRS onset, ~35 ms early, and the classifier was trained on windows centred on the
# annotated R peak), then Pan and Tompkins' T-wave rules (:func:`drop_t_waves`). "xqrs":
# wfdb's XQRS. On the DS1 records, against their annotations
# (benchmarks/ecg/qrs_detectors.py): gqrs Se 99.79 / +P 99.32, 44 of 3,788 V beats
# missed; XQRS Se 98.67 / +P 98.65, 442 V beats missed.
DETECTORS = ("gqrs", "xqrs")


def detect_beats(
    lead: np.ndarray, fs_hz: float, detector: str = "gqrs", where: str = "the lead"
) -> np.ndarray:
    """R-peak sample indices of one lead (mV) by :data:`DETECTORS` ``detector``; ``where``
    names the lead in errors.

    >>> detect_beats(np.zeros(3600), 360.0).tolist()  # a flat lead has no beats
    []
    """
    from wfdb import processing

    if detector not in DETECTORS:
        raise ConfigError(fmt(" or ".join(DETECTORS), detector, "--detector", "pick one"))
    sig = np.asarray(lead, dtype=np.float64)
    if not np.isfinite(sig).all():
        raise ConfigError(fmt("a finite ECG lead", "NaN or inf samples", where,
                              "fill or cut the gaps before detecting beats"))  # fmt: skip
    if len(sig) == 0 or not np.ptp(sig) > 0:
        return np.zeros(0, dtype=np.int64)
    if detector == "xqrs":
        xqrs = processing.XQRS(sig=sig, fs=fs_hz)
        xqrs.detect(verbose=False)
        return np.asarray(xqrs.qrs_inds, dtype=np.int64)
    return drop_t_waves(to_r_peaks(processing.gqrs_detect(sig=sig, fs=fs_hz), sig, fs_hz),
                        sig, fs_hz)  # fmt: skip


def to_r_peaks(detections: np.ndarray, lead: np.ndarray, fs_hz: float) -> np.ndarray:
    """Detections moved to the largest deviation within 50 ms (``wfdb.processing.correct_peaks``,
    150 ms smoothing), sorted and unique."""
    from wfdb import processing

    det = np.asarray(detections, dtype=np.int64)
    if len(det) == 0:
        return det
    peaks = processing.correct_peaks(np.asarray(lead, dtype=np.float64), det,
                                     round(0.05 * fs_hz), round(0.15 * fs_hz),
                                     peak_dir="compare")  # fmt: skip
    return np.unique(np.asarray(peaks, dtype=np.int64))


def drop_t_waves(detections: np.ndarray, lead: np.ndarray, fs_hz: float) -> np.ndarray:
    """Pan and Tompkins' rules on sorted detections: within 200 ms of the previous kept one,
    keep the steeper; 200-360 ms after it, drop a detection whose steepest slope (within
    75 ms) is under half the previous one's, a T wave rather than a QRS.

    >>> lead = np.zeros(1000); lead[[100, 400, 700]] = 1.0; lead[175:205] = np.linspace(0, .3, 30)
    >>> drop_t_waves(np.array([100, 190, 400, 700]), lead, 360.0).tolist()  # 190: 0.25 s, flat
    [100, 400, 700]
    """
    det = np.asarray(detections, dtype=np.int64)
    if len(det) < 2:
        return det
    x = np.asarray(lead, dtype=np.float64)
    d = np.abs(np.diff(x, prepend=x[0]))
    w = round(0.075 * fs_hz)
    slope = np.array([d[max(s - w, 0) : s + w + 1].max() for s in det])
    keep: list[int] = []
    for k, s in enumerate(det):
        gap = s - det[keep[-1]] if keep else np.inf
        if gap < 0.2 * fs_hz:
            if slope[k] > slope[keep[-1]]:
                keep[-1] = k
        elif not (gap < 0.36 * fs_hz and slope[k] < 0.5 * slope[keep[-1]]):
            keep.append(k)
    return det[keep]


def record_beat_samples(
    stem: Path, raw: np.ndarray, fs_in: float, use_annotations: bool, ext: str,
    detector: str = "gqrs",
) -> tuple[np.ndarray, np.ndarray, str]:  # fmt: skip
    """Beat samples, symbols and their source: the ``ext`` annotations, else ``detector``."""
    if use_annotations and Path(f"{stem}.{ext}").is_file():
        ann = read_annotations(stem, ext, fs_hz=fs_in)
        keep = np.isin(ann.symbol, list(BEAT_SYMBOLS)) & (ann.sample < len(raw))
        check_annotation_coverage(ann.sample[keep], len(raw), fs_in, f"{stem}.{ext}")
        return ann.sample[keep], ann.symbol[keep], "annotations"
    samples = detect_beats(raw, fs_in, detector, where=f"the lead of {stem}")
    return samples, np.full(len(samples), "", dtype=str), detector


def lead_beat_inputs(
    raw: np.ndarray, fs_in: float, samples: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The beat task's inputs from one raw lead at ``fs_in`` and its beats' samples there,
    as in training: the lead conditioned and resampled, then :func:`beat_inputs` with the
    task ``params`` (:data:`BEAT_DEFAULTS` keys). Returns ``x``, ``rr`` and ``kept``."""
    p = {**BEAT_DEFAULTS, **params}
    fs_hz = float(p["fs_hz"])
    lead = prepare_lead(raw, fs_in, fs_hz, bool(p["filter"]))
    scaled = np.round(samples * (fs_hz / fs_in)).astype(np.int64)
    return beat_inputs(lead, fs_hz, scaled, p["window_s"], bool(p["patient_norm"]),
                       bool(p["morph_features"]), str(p["morph_reference"]))  # fmt: skip


def predict_record(
    model: torch.nn.Module | None,
    normalizer_apply: Apply | None,
    record_path_stem: Path | str,
    task_params: dict[str, Any] | None = None,
    af_model: torch.nn.Module | None = None,
    af_normalizer_apply: Apply | None = None,
    af_task_params: dict[str, Any] | None = None,
    class_names: Sequence[str] = AAMI_CLASSES,
    use_annotations: bool = True,
    annotation_ext: str = "atr",
    max_duration_s: float | None = None,
    batch_size: int = 4096,
    detector: str = "gqrs",
) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """Classify every beat of a WFDB record and (with ``af_model``) find AF episodes.

    ``model`` takes ``(x (N,1,T), rr (N,4))`` like ``hannun_resnet1d_rr`` (``x`` only when
    ``task_params["rr"]`` is false, as for ``lab_cnn`` runs), or ``(x (N,2,T), rr (N,24))``
    when the run used ``patient_norm`` (the beats are then expressed relative to this
    record, over all its beats, as in training; rr (N, 30) with ``morph_features``);
    ``normalizer_apply`` is applied to ``x`` as in training (the run's
    ``Normalizer.transform``). ``task_params``: the beat task's lead, fs_hz, window_s,
    filter, patient_norm, morph_features, morph_reference, rr.
    Returns per-beat rows (sample, time_s, source, reference symbol/class when annotated,
    predicted class, one probability per class) and AF episodes ``{start_s, end_s}``
    merged from consecutive positive windows. Beats whose window runs off the record are
    skipped (logged).
    """
    stem = _stem(record_path_stem)
    rec = read_record(stem)
    rows: list[dict[str, Any]] = []
    if model is not None:
        p = {**BEAT_DEFAULTS, **(task_params or {})}
        i, used = select_lead(rec.sig_names, str(p["lead"]))
        if used != p["lead"]:
            log.warning("%s: no lead %s (the run's), using %s; pass the matching lead",
                        stem.name, p["lead"], used)  # fmt: skip
        raw = rec.signal[i]
        if max_duration_s is not None:
            raw = raw[: round(max_duration_s * rec.fs_hz)]
        samples, symbols, source = record_beat_samples(stem, raw, rec.fs_hz, use_annotations,
                                                       annotation_ext, detector)  # fmt: skip
        x, rr, kept = lead_beat_inputs(raw, rec.fs_hz, samples, p)
        if normalizer_apply is not None:
            x = normalizer_apply(x)
        # the task's inputs, as in training: x, then rr unless the run used rr: false
        proba = predict_proba(model, [x, rr] if p["rr"] else [x], batch_size)
        if len(kept) < len(samples):
            log.info("%s: %d beats skipped (window off the record edge)", stem.name,
                     len(samples) - len(kept))  # fmt: skip
        for j, k in enumerate(kept):
            sym = str(symbols[k])
            row: dict[str, Any] = {
                "record": stem.name, "sample": int(samples[k]),
                "time_s": round(float(samples[k]) / rec.fs_hz, 4), "lead": used, "source": source,
                "ref_symbol": sym, "ref_class": AAMI_MAP.get(sym, ""),
                "predicted": class_names[int(proba[j].argmax())],
            }  # fmt: skip
            row.update({f"p_{c}": round(float(v), 6) for c, v in zip(class_names, proba[j])})
            rows.append(row)
    episodes: list[dict[str, float]] = []
    if af_model is not None:  # reuse the beats found above; else predict_af finds them
        known = (samples, source) if model is not None else None
        _, episodes = predict_af(af_model, af_normalizer_apply, rec if known else stem,
                                 af_task_params, max_duration_s, batch_size, beats=known,
                                 use_annotations=use_annotations, annotation_ext=annotation_ext,
                                 detector=detector)  # fmt: skip
        mark_rhythm(rows, episodes)
    return rows, episodes


def mark_rhythm(rows: list[dict[str, Any]], episodes: Sequence[dict[str, float]]) -> None:
    """Add ``in_af_episode`` and ``predicted_rhythm_aware`` to per-beat rows, in place.

    During atrial fibrillation there is no organised atrial rhythm for a beat to be premature
    to, and AAMI labels the beats of AF episodes N; an S call there is read as N in
    ``predicted_rhythm_aware``. ``predicted`` itself is left as the beat model gave it.

    >>> rows = [{"time_s": 5.0, "predicted": "S"}, {"time_s": 25.0, "predicted": "S"}]
    >>> mark_rhythm(rows, [{"start_s": 0.0, "end_s": 10.0}])
    >>> [(r["in_af_episode"], r["predicted_rhythm_aware"]) for r in rows]
    [(True, 'N'), (False, 'S')]
    """
    starts = np.array([e["start_s"] for e in episodes], dtype=np.float64)
    ends = np.array([e["end_s"] for e in episodes], dtype=np.float64)
    for row in rows:
        t = float(row["time_s"])
        in_af = bool(((starts <= t) & (t < ends)).any())
        row["in_af_episode"] = in_af
        row["predicted_rhythm_aware"] = (
            "N" if in_af and row["predicted"] == "S" else row["predicted"]
        )


def predict_af(
    af_model: torch.nn.Module,
    normalizer_apply: Apply | None,
    record: Any,
    task_params: dict[str, Any] | None = None,
    max_duration_s: float | None = None,
    batch_size: int = 4096,
    beats: tuple[np.ndarray, str] | None = None,
    use_annotations: bool = True,
    annotation_ext: str = "atr",
    detector: str = "gqrs",
) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """AF probability per non-overlapping window (rows) and merged AF episodes.

    ``record``: a :class:`~medtorch.data.sources.wfdb_reader.Record` or a path stem. Runs
    trained with ``rr: true`` also need the beats, ``(samples at the record's rate,
    source)``: given, or read from the annotations next to a path stem, or found by the
    QRS ``detector`` (:data:`DETECTORS`).
    """
    stem = None if hasattr(record, "signal") else _stem(record)
    rec = record if stem is None else read_record(stem)
    p = {**AF_DEFAULTS, **(task_params or {})}
    i, used = select_lead(rec.sig_names, str(p["lead"]))
    if used != p["lead"]:
        log.warning("%s: no lead %s (the AF run's), using %s; pass the matching lead",
                    rec.name, p["lead"], used)  # fmt: skip
    raw = rec.signal[i]
    if max_duration_s is not None:
        raw = raw[: round(max_duration_s * rec.fs_hz)]
    lead = prepare_lead(raw, rec.fs_hz, rec.fs_hz, bool(p["filter"]))
    window_s = float(p["window_s"])
    x, starts = af_window_inputs(lead, rec.fs_hz, window_s, p["target_fs_hz"])
    inputs = [x]
    source = ""
    if bool(p["rr"]):
        if beats is None:
            if stem is None:
                raise ConfigError(
                    f"expected the beats of record {rec.name} for an AF run trained with "
                    "task.params.rr=true, got a loaded record and beats=None; pass the "
                    "record's path (its annotations or the QRS detector give the beats) or beats="
                )
            samples, _, source = record_beat_samples(stem, raw, rec.fs_hz, use_annotations,
                                                     annotation_ext, detector)  # fmt: skip
        else:
            samples, source = beats
        n_win = round(window_s * rec.fs_hz)
        inputs.append(af_rr_features(np.sort(samples), rec.fs_hz, starts, n_win))
        if not bool(p["waveform"]):
            inputs = inputs[1:]  # the RR features are the model's x
    if normalizer_apply is not None:
        inputs[0] = normalizer_apply(inputs[0])
    proba = predict_proba(af_model, inputs, batch_size)
    rows = [{"record": rec.name, "start_s": round(s / rec.fs_hz, 4),
             "end_s": round(s / rec.fs_hz + window_s, 4), "predicted": "af" if q[1] >= 0.5 else "other",
             "p_other": round(float(q[0]), 6), "p_af": round(float(q[1]), 6),
             **({"beats_source": source} if source else {})}
            for s, q in zip(starts, proba)]  # fmt: skip
    return rows, merge_episodes([r["start_s"] for r in rows], proba[:, 1] >= 0.5, window_s)


def merge_episodes(
    starts_s: Sequence[float], positive: np.ndarray, window_s: float
) -> list[dict[str, float]]:
    """Merge runs of consecutive positive windows into ``{start_s, end_s}`` episodes.

    >>> merge_episodes([0, 10, 20, 30], np.array([True, True, False, True]), 10.0)
    [{'start_s': 0.0, 'end_s': 20.0}, {'start_s': 30.0, 'end_s': 40.0}]
    """
    episodes: list[dict[str, float]] = []
    for s, pos in zip(starts_s, positive):
        if not pos:
            continue
        if episodes and abs(episodes[-1]["end_s"] - float(s)) < 1e-6:
            episodes[-1]["end_s"] = float(s) + window_s
        else:
            episodes.append({"start_s": float(s), "end_s": float(s) + window_s})
    return episodes


def write_predictions_csv(path: Path | str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows (dicts with the same keys) as CSV; an empty table gets no header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def predict_record_to_csv(
    cfg: Any,
    model: torch.nn.Module,
    norm: Any,
    classes: Sequence[str],
    record: Path,
    out: Path,
    af: tuple[Any, torch.nn.Module, Any] | None = None,
    lead: str | None = None,
    detector: str = "gqrs",
) -> str:
    """``medtorch predict RUN_DIR RECORD --out FILE`` for the ECG tasks; returns a summary.

    ``cfg``: the run's RunConfig; ``norm``: its Normalizer. Beat runs write one row per
    beat; AF runs (``mitdb_af_windows``) one row per window plus ``<out>.episodes.csv``.
    ``af``: (config, model, normalizer) of an AF run used beside a beat run
    (``--af-run``); its episodes go to ``<out>.episodes.csv`` and it reuses the beats.
    ``lead``: the record's lead to read instead of the run's (``--lead``; e.g. ``II`` for
    an INCART record with a run trained on MIT-BIH MLII). ``detector``: the QRS detector
    for a record without beat annotations (:data:`DETECTORS`).
    """
    params = dict(cfg.task.params) | ({"lead": lead} if lead else {})
    if lead is not None:  # a lead the user names must exist: no fallback to another one
        names = [str(n) for n in read_header(_stem(record))[0].sig_name]
        if lead not in names:
            raise ConfigError(fmt(f"a lead of record {_stem(record).name}", lead, "--lead",
                                  f"pass one of {', '.join(names)}"))  # fmt: skip
    if cfg.task.name == "mitdb_af_windows":
        rows, episodes = predict_af(model, norm.transform, _stem(record), params,
                                    detector=detector)  # fmt: skip
        write_predictions_csv(out, rows)
        ep = write_predictions_csv(Path(out).with_suffix(".episodes.csv"), episodes)
        return f"wrote {len(rows)} windows to {out} and {len(episodes)} AF episodes to {ep}"
    params = {k: v for k, v in params.items() if k in BEAT_DEFAULTS}
    af_model, af_apply, af_params = None, None, None
    if af is not None:
        af_model, af_apply = af[1], af[2].transform
        af_params = {k: v for k, v in dict(af[0].task.params).items() if k in AF_DEFAULTS}
        af_params |= {"lead": lead} if lead else {}
    rows, episodes = predict_record(model, norm.transform, record, params, af_model=af_model,
                                    af_normalizer_apply=af_apply, af_task_params=af_params,
                                    class_names=classes, detector=detector)  # fmt: skip
    write_predictions_csv(out, rows)
    source = rows[0]["source"] if rows else "none"
    msg = f"wrote {len(rows)} beat predictions to {out} (beats from {source})"
    if af is not None:
        ep = write_predictions_csv(Path(out).with_suffix(".episodes.csv"), episodes)
        msg += f" and {len(episodes)} AF episodes to {ep}"
    return msg


def predict_run(
    *,
    run_dir: Path,
    cfg: Any,
    spec: dict[str, Any],
    model: torch.nn.Module,
    input_path: Path,
    out: Path,
    af_run: Path | None = None,
    lead: str | None = None,
    detector: str = "gqrs",
) -> str:
    """The ``predictor`` the MIT-BIH tasks declare: ``medtorch predict`` on a WFDB record.

    ``af_run``: an AF-window run used beside a heartbeat run, so one call writes the beats
    and the AF episodes (``--af-run``); ``lead`` and ``detector`` as in
    :func:`predict_record_to_csv`.
    """
    from medtorch.pipeline import load_normalizer, restore_model

    af = None
    if af_run is not None:
        if cfg.task.name != "mitdb_aami_beats":
            raise ConfigError(
                f"expected a heartbeat run (task mitdb_aami_beats) with --af-run, got task "
                f"{cfg.task.name!r} in {run_dir}; pass the AF run alone or a beat run first"
            )
        af_cfg, _, af_model = restore_model(af_run)
        if af_cfg.task.name != "mitdb_af_windows":
            raise ConfigError(
                f"expected an AF run (task mitdb_af_windows) in --af-run, got task "
                f"{af_cfg.task.name!r} in {af_run}; train one with recipe mitdb_af_rr_mlp"
            )
        af = (af_cfg, af_model, load_normalizer(af_run))
    return predict_record_to_csv(cfg, model, load_normalizer(run_dir), spec["class_names"],
                                 input_path, out, af, lead, detector)  # fmt: skip

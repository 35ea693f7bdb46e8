"""Score a heartbeat run on annotated WFDB records of any database, beat by beat (AAMI EC57).

``medtorch ecg-score RUN_DIR RECORD_OR_FOLDER ... --out FILE.json`` runs the run's model
on every record as ``medtorch predict`` does and compares its classes with the records'
reference annotations: per-class Se, +P, F1, specificity, accuracy and kappa with 95%
CIs that resample whole records (:func:`medtorch.metrics.aami.aami_report`), plus each
record's S and V counts. It serves two purposes a test split inside training cannot:

- **other databases.** A run trained on MIT-BIH DS1 can be scored on INCART, SVDB or a
  hospital's own annotated Holter records without retraining; ``--lead`` names the lead
  that matches the training lead (MIT-BIH MLII ~ INCART ``II``).
- **the beats found by the QRS detector** (``--detect``). By default each reference beat is
  classified at its annotated position, as in the inter-patient literature. With
  ``--detect`` the beats come from the QRS detector ``medtorch predict`` uses on a record
  without annotations (:data:`~medtorch.ecg.predict.DETECTORS`, ``--detector``); detections are matched one-to-one to reference beats within
  ``tolerance_s`` (150 ms, EC57) by ``wfdb.processing.compare_annotations``. A reference
  beat left unmatched is *missed* (it counts against its class's Se), a detection left
  unmatched is *extra* (it counts against the +P of the class it was given); both appear
  in the confusion matrix as the class ``none``, and accuracy and kappa count them as
  errors.

Only beat annotations count (:data:`~medtorch.ecg.records.BEAT_SYMBOLS`), as in
training; beats whose window runs off the record's ends are left out in both modes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.sources.wfdb_reader import read_annotations, read_header
from medtorch.ecg.beats import AAMI_MAP
from medtorch.ecg.predict import BEAT_DEFAULTS, predict_record
from medtorch.ecg.records import BEAT_SYMBOLS
from medtorch.errors import ConfigError, fmt
from medtorch.metrics.aami import aami_report

log = logging.getLogger("medtorch")
NONE = "none"  # the class of a missed reference beat's prediction / an extra detection's truth
EC57_TOLERANCE_S = 0.15


def record_stems(paths: Sequence[Path | str], annotation_ext: str = "atr") -> list[Path]:
    """WFDB record stems from record paths (with or without extension) and folders.

    A folder gives the records listed in its ``RECORDS`` file, else every ``*.hea`` in it,
    keeping those with a ``.<annotation_ext>`` file; a record named directly must have one.

    >>> record_stems(["no/such/record"])
    Traceback (most recent call last):
    ...
    medtorch.errors.ConfigError: expected a WFDB record with a .hea header and .atr annotations, got 'no/such/record' in RECORD; pass a record path without extension or a folder of records
    """
    stems: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            listed = p / "RECORDS"
            names = listed.read_text().split() if listed.is_file() else None
            cands = (
                [p / n for n in names]
                if names
                else sorted(h.with_suffix("") for h in p.glob("*.hea"))
            )
            found = [c for c in cands if Path(f"{c}.{annotation_ext}").is_file()]
            if not found:
                raise ConfigError(fmt(f"WFDB records with .{annotation_ext} annotations",
                                      str(p), "RECORD", "pass a folder holding .hea and "
                                      f".{annotation_ext} files"))  # fmt: skip
            stems += found
            continue
        stem = p.with_suffix("") if p.suffix in (".hea", ".dat", ".atr", ".mat") else p
        if not (Path(f"{stem}.hea").is_file() and Path(f"{stem}.{annotation_ext}").is_file()):
            raise ConfigError(fmt(f"a WFDB record with a .hea header and .{annotation_ext} "
                                  "annotations", str(raw), "RECORD", "pass a record path "
                                  "without extension or a folder of records"))  # fmt: skip
        stems.append(stem)
    return stems


def match_detections(ref_samples: np.ndarray, det_samples: np.ndarray, window: int) -> np.ndarray:
    """For each reference beat, the index of its matched detection, or -1 (missed):
    one-to-one within ``window`` samples, by ``wfdb.processing.compare_annotations``.

    >>> match_detections(np.array([100, 400, 700]), np.array([90, 420, 560, 1000]), 30).tolist()
    [0, 1, -1]
    """
    from wfdb import processing

    ref = np.asarray(ref_samples, dtype=np.int64)
    det = np.asarray(det_samples, dtype=np.int64)
    if len(ref) == 0 or len(det) == 0:
        return np.full(len(ref), -1, dtype=np.int64)
    comp = processing.compare_annotations(ref, det, int(window))
    return np.asarray(comp.matching_sample_nums, dtype=np.int64)


def _record_pairs(
    model: Any, apply: Any, stem: Path, params: dict[str, Any], classes: Sequence[str],
    detect: bool, tolerance_s: float, annotation_ext: str, detector: str,
    fs_hz: float, n_samples: int,
) -> tuple[list[int], list[int], dict[str, Any]]:  # fmt: skip
    """(true, predicted) class indices of one record's beats (``none``: len(classes));
    ``fs_hz`` and ``n_samples`` from its header."""
    index = {c: i for i, c in enumerate(classes)}
    none = len(classes)
    rows, _ = predict_record(model, apply, stem, params, class_names=classes,
                             use_annotations=not detect, annotation_ext=annotation_ext,
                             detector=detector)  # fmt: skip
    pred = [index[r["predicted"]] for r in rows]
    info: dict[str, Any] = {"lead": rows[0]["lead"] if rows else None}
    if not detect:  # beats whose symbol has no AAMI class (e.g. "?") are counted, not scored
        mapped = [r["ref_class"] in index for r in rows]
        info["unmapped"] = _count_unmapped(r["ref_symbol"] for r, m in zip(rows, mapped) if not m)
        return ([index[r["ref_class"]] for r, m in zip(rows, mapped) if m],
                [p for p, m in zip(pred, mapped) if m], info)  # fmt: skip
    ann = read_annotations(stem, annotation_ext, fs_hz=fs_hz)
    beat = np.isin(ann.symbol, list(BEAT_SYMBOLS))
    ref_sym = [str(s) for s in ann.symbol[beat]]
    ref_s = ann.sample[beat]
    ref_c = [index.get(AAMI_MAP.get(s, ""), -1) for s in ref_sym]  # -1: no AAMI class
    det_s = np.array([r["sample"] for r in rows], dtype=np.int64)
    # compare only beats whose window lies inside the record, as predict classifies only
    # those: a reference beat at the very edge is not one the detector missed
    before_s, after_s = (float(v) for v in params.get("window_s", BEAT_DEFAULTS["window_s"]))
    t = ref_s / fs_hz
    inside = (t >= before_s) & (t + after_s <= n_samples / fs_hz)
    ref_s, ref_c = ref_s[inside], [c for c, k in zip(ref_c, inside) if k]
    ref_sym = [s for s, k in zip(ref_sym, inside) if k]
    match = match_detections(ref_s, det_s, round(tolerance_s * fs_hz))
    # an unmapped reference beat still takes its detection (it is a beat, not an extra),
    # but is counted apart instead of scored
    scored = [c >= 0 for c in ref_c]
    info["unmapped"] = _count_unmapped(s for s, k in zip(ref_sym, scored) if not k)
    true = [c for c, k in zip(ref_c, scored) if k]
    got = [pred[j] if j >= 0 else none for j, k in zip(match, scored) if k]
    extra = np.setdiff1d(np.arange(len(det_s)), match[match >= 0])
    true += [none] * len(extra)
    got += [pred[j] for j in extra]
    info |= {"reference_beats": len(ref_s), "detections": len(det_s),
             "missed": int((match < 0).sum()), "extra": len(extra)}  # fmt: skip
    return true, got, info


def _count_unmapped(symbols: Any) -> dict[str, int]:
    """Beat symbol -> count, for the beats whose symbol has no AAMI class."""
    out: dict[str, int] = {}
    for s in symbols:
        out[str(s)] = out.get(str(s), 0) + 1
    return out


def score_records(
    run_dirs: Sequence[Path | str],
    records: Sequence[Path | str],
    detect: bool = False,
    lead: str | None = None,
    tolerance_s: float = EC57_TOLERANCE_S,
    annotation_ext: str = "atr",
    n_bootstrap: int = 1000,
    detector: str = "gqrs",
) -> dict[str, Any]:
    """AAMI scores of a heartbeat run (several runs of one recipe: their mean probabilities)
    on annotated WFDB records; see the module docstring. Returns a JSON-ready dict."""
    from medtorch.pipeline import load_normalizer
    from medtorch.predict import restore_ensemble

    if not tolerance_s > 0:
        raise ConfigError(fmt("a positive number of seconds", tolerance_s, "--tolerance-s",
                              "use 0.15 (EC57)"))  # fmt: skip
    cfg, spec, model = restore_ensemble([Path(r) for r in run_dirs])
    if cfg.task.name != "mitdb_aami_beats":
        raise ConfigError(fmt("a heartbeat run (task mitdb_aami_beats)", cfg.task.name,
                              str(run_dirs[0]), "score a run of mitdb_aami_resnet1d or "
                              "mitdb_aami_cnn"))  # fmt: skip
    classes = list(spec["class_names"])
    params = {k: v for k, v in dict(cfg.task.params).items() if k in BEAT_DEFAULTS}
    if lead is not None:
        params["lead"] = lead
    stems = record_stems(records, annotation_ext)
    apply = load_normalizer(run_dirs[0]).transform
    y_true: list[int] = []
    y_pred: list[int] = []
    groups: list[str] = []
    per_record: dict[str, Any] = {}
    for stem in stems:
        header, fs_hz = read_header(stem)  # the samples are read once, by predict
        if lead is not None and lead not in (names := list(header.sig_name)):
            raise ConfigError(fmt(f"lead {lead!r} in every record", names,
                                  f"{stem}.hea", "pass --lead with one of these"))  # fmt: skip
        t, p, info = _record_pairs(model, apply, stem, params, classes, detect, tolerance_s,
                                   annotation_ext, detector, fs_hz, int(header.sig_len))  # fmt: skip
        ta, pa = np.asarray(t), np.asarray(p)
        for c in ("S", "V"):
            k = classes.index(c) if c in classes else -1
            info[c] = {"reference": int((ta == k).sum()), "found": int(((ta == k) & (pa == k)).sum()),
                       "false": int(((ta != k) & (pa == k)).sum())}  # fmt: skip
        if not (ta < len(classes)).any():
            log.warning("%s: no beat annotations to score", stem.name)
        per_record[stem.name] = info
        y_true += t
        y_pred += p
        groups += [stem.name] * len(t)
    if not y_true:
        raise ConfigError(fmt("beat annotations to score", f"none in {len(stems)} record(s)",
                              "RECORD", "pass records whose .atr files mark beats"))  # fmt: skip
    names = [*classes, NONE] if detect else classes
    report = aami_report(np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64),
                         names, groups=np.asarray(groups), n_bootstrap=n_bootstrap)  # fmt: skip
    if detect:
        report["per_class"].pop(NONE)
        ref = sum(i["reference_beats"] for i in per_record.values())
        det = sum(i["detections"] for i in per_record.values())
        missed = sum(i["missed"] for i in per_record.values())
        report["detection"] = {"reference_beats": ref, "detections": det, "missed": missed,
                               "extra": sum(i["extra"] for i in per_record.values()),
                               "Se": (ref - missed) / ref if ref else None,
                               "+P": (ref - missed) / det if det else None}  # fmt: skip
    unmapped: dict[str, int] = {}
    for info in per_record.values():
        for sym, k in info.get("unmapped", {}).items():
            unmapped[sym] = unmapped.get(sym, 0) + k
    return {
        "runs": [str(r) for r in run_dirs],
        "unmapped_beats": unmapped,  # beats with no AAMI class (e.g. "?"): counted, not scored
        "beats_from": detector if detect else "annotations",
        "tolerance_s": tolerance_s if detect else None,
        "lead": params.get("lead", BEAT_DEFAULTS["lead"]),
        "records": [s.name for s in stems],
        "aami": report,
        "per_record": per_record,
    }


def format_summary(result: dict[str, Any]) -> str:
    """A few lines: per-class Se / +P with CIs, accuracy, kappa and, with --detect, beats."""
    a = result["aami"]

    def pc(e: dict[str, Any]) -> str:
        v, ci = e.get("value"), e.get("ci")
        if v is None:
            return "n/a"
        return f"{100 * v:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")

    def num(v: float | None, scale: float = 1.0, digits: int = 3) -> str:
        return "n/a" if v is None else f"{scale * v:.{digits}f}"

    lines = [f"{len(result['records'])} records, {a['n']} beats (from {result['beats_from']})"]
    if unmapped := result.get("unmapped_beats"):
        shown = ", ".join(f"{s!r} x{k}" for s, k in sorted(unmapped.items()))
        lines.append(f"not scored: {sum(unmapped.values())} beats with no AAMI class ({shown})")
    for c, row in a["per_class"].items():
        lines.append(f"{c}: Se {pc(row['Se'])}  +P {pc(row['+P'])}  (n={row['support']})")
    lines.append(f"accuracy {pc(a['overall']['accuracy'])}, kappa "
                 f"{num(a['overall']['cohen_kappa']['value'])}")  # fmt: skip
    if "detection" in a:
        d = a["detection"]
        lines.append(f"beats detected: Se {num(d['Se'], 100, 2)}, +P {num(d['+P'], 100, 2)} "
                     f"({d['missed']} missed, {d['extra']} extra)")  # fmt: skip
    return "\n".join(lines)

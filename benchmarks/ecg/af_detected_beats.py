"""The RR-only AF detector on DS2 with beats from the annotations and from QRS detectors.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/af_detected_beats.py \\
        --af-run runs/af_mlp_ds1-* --json benchmarks/results/ecg_af_detected_beats.json

The AF run of RESULTS 2.1 ("Rhythm-aware labels") (the ``mitdb_af_rr_mlp`` recipe trained on DS1 only) reads
the RR intervals of each 10 s window. Its test figures take the beats from the reference
annotations; on a record without them, ``medtorch predict`` takes them from a QRS detector,
whose missed and extra beats change the intervals. For every DS2 record this runs
:func:`medtorch.ecg.predict.predict_af` three ways (annotations, gqrs, xqrs) and scores
the windows against the reference rhythm (AF where at least half of the window lies in an
(AFIB or (AFL episode, as the task labels them): sensitivity, specificity, PPV and F1,
pooled over DS2, plus per record. As a check of the wiring, the annotated mode must give
back the run's own test predictions.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.paths import portable_path, resolve_data_dir
from medtorch.data.sources.wfdb_reader import read_annotations, read_record
from medtorch.ecg.af import af_indicator
from medtorch.ecg.predict import AF_DEFAULTS, predict_af
from medtorch.ecg.records import DS2, mitdb_dir
from medtorch.pipeline import load_normalizer, restore_model

MODES = (("annotations", True, "gqrs"), ("gqrs", False, "gqrs"), ("xqrs", False, "xqrs"))


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    fn, tn = int((y & ~p).sum()), int((~y & ~p).sum())

    def div(a: int, b: int) -> float | None:
        return round(100 * a / b, 1) if b else None

    se, ppv = div(tp, tp + fn), div(tp, tp + fp)
    f1 = round(2 * se * ppv / (se + ppv), 1) if se and ppv else None
    return {"Se": se, "Sp": div(tn, tn + fp), "PPV": ppv, "F1": f1, "windows": len(y),
            "af_windows": int(y.sum())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--af-run", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    cfg, _, model = restore_model(a.af_run)
    params = {k: v for k, v in dict(cfg.task.params).items() if k in AF_DEFAULTS}
    apply = load_normalizer(a.af_run).transform
    with (a.af_run / "predictions_test.csv").open(newline="") as f:
        own = {r["sample_id"]: float(r["p_af"]) for r in csv.DictReader(f)}
    if not own or {k.split(":")[0] for k in own} != set(DS2):
        raise SystemExit(f"{a.af_run}: expected an AF run tested on DS2 (mitdb_ds1_ds2)")
    root = mitdb_dir(resolve_data_dir(a.data_dir))
    t0 = time.perf_counter()
    truth: list[bool] = []
    pred: dict[str, list[bool]] = {m: [] for m, _, _ in MODES}
    per_record: dict[str, Any] = {}
    for r in DS2:
        rec = read_record(root / r)
        ann = read_annotations(root / r, fs_hz=rec.fs_hz)
        af = af_indicator(ann.symbol, ann.sample, ann.aux_note, rec.n_samples)
        n_win = round(float(params["window_s"]) * rec.fs_hz)
        per_record[r] = {}
        for mode, use_ann, detector in MODES:
            rows, _ = predict_af(model, apply, root / r, params, use_annotations=use_ann,
                                 detector=detector)  # fmt: skip
            starts = np.array([round(w["start_s"] * rec.fs_hz) for w in rows])
            p_af = np.array([w["p_af"] for w in rows])
            if mode == "annotations":
                ref = np.array([own[f"{r}:{s}"] for s in starts])
                if len(ref) != len(p_af) or np.abs(ref - p_af).max() > 1e-4:
                    raise SystemExit(f"{r}: annotated mode differs from the run's predictions")
                y = np.array([af[s : s + n_win].mean() >= 0.5 for s in starts])
                truth += y.tolist()
            p = p_af > 0.5
            pred[mode] += p.tolist()
            per_record[r][mode] = {"af_windows_called": int(p.sum()), "agree_with_truth":
                                   int((p == y).sum())}  # fmt: skip
        per_record[r]["af_windows"] = int(y.sum())
        print(r, per_record[r], f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    y_all = np.array(truth)
    out: dict[str, Any] = {
        "af_run": portable_path(a.af_run, a.data_dir),
        "records": list(DS2),
        "pooled": {m: _scores(y_all, np.array(pred[m])) for m, _, _ in MODES},
        "per_record": per_record,
        "annotated_mode_matches_run": True,  # checked above, else exit
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    for m, s in out["pooled"].items():
        print(f"{m:12s}", s)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

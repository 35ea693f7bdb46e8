"""Heartbeat runs scored two ways: at the annotated beats, and at the beats a QRS detector finds.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/detected_beats.py \\
        runs/mitdb_aami_resnet1d-s0-* runs/mitdb_aami_resnet1d-s1-* ... \\
        [--detector gqrs|xqrs] --json benchmarks/results/ecg_detected_beats_gqrs.json
    # another database (RESULTS, section 2.1, "Patients never read"):
    ... benchmarks/ecg/detected_beats.py RUNS --records $MEDTORCH_DATA/incartdb --lead II \\
        --json benchmarks/results/external/incartdb.json

The inter-patient literature (and the run's own test metrics) classifies each reference
beat at its annotated R peak. A device has no annotations: it classifies the beats its
QRS detector finds, whose positions differ by a few samples, with some beats missed and
some extra, and its RR features come from those detections. ``medtorch ecg-score
--detect [--detector ...]`` scores that (:mod:`medtorch.ecg.score`: EC57 matching within 150 ms; a missed
beat counts against its class's Se, an extra detection against the +P of the class it
got). This script runs both modes for each run and reports mean and sd over the runs
(seeds). On DS2 (the default records) it also checks that the annotated mode gives back
each run's own test confusion matrix. ``--records``: record paths or folders of any
annotated WFDB database instead, with ``--lead`` naming the lead that matches the runs'.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.paths import portable_path, resolve_data_dir
from medtorch.ecg.evaluation import aami_rows
from medtorch.ecg.records import DS2, mitdb_dir
from medtorch.ecg.score import score_records

KEYS = ("N Se", "N +P", "S Se", "S +P", "S F1", "V Se", "V +P", "V F1", "accuracy", "kappa")


def _own(run: Path) -> Any:
    return json.loads((run / "metrics.json").read_text())["test"]["aami"]["confusion_matrix"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--detector", default="gqrs", choices=["gqrs", "xqrs"])
    ap.add_argument("--records", nargs="+", help="WFDB records or folders (default: DS2)")
    ap.add_argument("--lead", help="the records' lead matching the runs' (e.g. II)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    ds2 = a.records is None
    records = [mitdb_dir(resolve_data_dir(a.data_dir)) / r for r in DS2] if ds2 else a.records
    out: dict[str, Any] = {"records": [portable_path(r, a.data_dir) for r in records],
                           "lead": a.lead, "detector": a.detector, "runs": {},
                           "summary": {}}  # fmt: skip
    t0 = time.perf_counter()
    for run in a.runs:
        per_mode = {}
        for mode, detect in (("annotations", False), (a.detector, True)):
            r = score_records([run], records, detect=detect, lead=a.lead,
                              n_bootstrap=a.n_bootstrap, detector=a.detector)  # fmt: skip
            if ds2 and not detect and r["aami"]["confusion_matrix"] != _own(run):
                raise SystemExit(f"{run}: annotated scoring differs from the run's test metrics")
            row = {k: v for k, v in aami_rows(r["aami"]).items() if k in KEYS}
            row["S Se CI"] = r["aami"]["per_class"]["S"]["Se"]["ci"]
            row["S +P CI"] = r["aami"]["per_class"]["S"]["+P"]["ci"]
            if detect:
                row["detection"] = r["aami"]["detection"]
                row["confusion_matrix"] = r["aami"]["confusion_matrix"]
            row["per_record"] = r["per_record"]
            per_mode[mode] = row
            print(run.name, mode, {k: round(row[k], 2) for k in KEYS},
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
        out["runs"][run.name] = per_mode
    for mode in ("annotations", a.detector):
        out["summary"][mode] = {}
        for k in KEYS:
            v = np.array([out["runs"][r][mode][k] for r in out["runs"]], dtype=float)
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            out["summary"][mode][k] = {"mean": float(v.mean()), "sd": sd}
            print(f"{mode:12s} {k:9s} {v.mean():7.3f} ± {sd:.3f}")
    out["annotations_match_run_metrics"] = True if ds2 else None  # checked above, else exit
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

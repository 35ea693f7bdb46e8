"""The RR gate's operating point (``rr_gate_min_ppv``), checked inside DS1 by nested CV.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/rr_gate_operating_point.py \\
        --json benchmarks/results/ecg_rr_gate_operating_point.json

The recipe's stage (trees on the first 7 patient-relative RR features, S weight 10) picks
its threshold when it is fitted: the most sensitive one whose leave-one-record-out +P on
the beats it is fitted on is at least ``min_ppv`` (0.5, the issue's SVEB +P floor). Fitted
on DS1, the CV numbers it reports for that point are in-sample for the threshold (it was
chosen on them). This script measures the whole procedure on records it never saw: for
each of the 22 DS1 records, the stage is fitted with ``min_ppv`` on the other 21 (which
runs its own 21-fold CV) and predicts that record's N and S beats; pooled over DS1: S Se
and +P, beside the same with the threshold left at 0. DS2 is not read.

``--features morph``: the same check for a stage on the 7 RR features plus the 6 beat-shape
features (``task.params.morph_features``; the recipe's columns),
whose threshold the recipe leaves at 0 (``rr_gate_min_ppv: null``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.ecg.evaluation import MORPH_GATE_COLS, recipe_beats, s_scores
from medtorch.ecg.records import DS1
from medtorch.models.rr_gate import RRGate

N_FEATURES, WEIGHT = 7, 10.0  # the RR stage (model.params.rr_gate_*)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--min-ppv", type=float, nargs="+", default=[0.5])
    ap.add_argument("--features", choices=["rr7", "morph"], default="rr7")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    morph = a.features == "morph"
    beats = recipe_beats(
        list(DS1),
        a.data_dir,
        **({"morph_features": True, "morph_reference": "auto"} if morph else {}),
    )
    keep = beats["y"] <= 1  # N = 0, S = 1
    rec, s = beats["record"][keep].astype(str), beats["y"][keep] == 1
    cols = MORPH_GATE_COLS if morph else list(range(N_FEATURES))
    f = beats["rr"][keep][:, cols].astype(np.float64)
    what = " and the 6 beat-shape features" if morph else ""
    out: dict[str, Any] = {"stage": f"trees, first {N_FEATURES} RR features{what}, S weight {WEIGHT}",
                           "protocol": "outer leave-one-DS1-record-out; inside, the stage's "
                                       "own leave-one-record-out CV picks the threshold",
                           "n_beats": {"N": int((~s).sum()), "S": int(s.sum())}, "rows": []}  # fmt: skip
    for floor in [None, *a.min_ppv]:
        called = np.zeros(len(s), bool)
        offsets = {}
        for r in DS1:
            te = rec == r
            gate = RRGate(f.shape[1], n_classes=2, weight=WEIGHT, method="trees", min_ppv=floor)
            gate.fit(f[~te], s[~te].astype(int), rec[~te])
            offsets[r] = round(float(gate.offset), 3)
            with torch.no_grad():
                called[te] = (gate.score(torch.as_tensor(f[te])) - gate.offset).numpy() > 0
        row = {"min_ppv": floor, **s_scores(s, called),
               "offset_range": [min(offsets.values()), max(offsets.values())],
               "offset_by_held_out_record": offsets}  # fmt: skip
        out["rows"].append(row)
        print(row, f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""What the RR gate's cross-validated operating point costs at fit time (DS1 beats, CPU).

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/speed/rr_gate_fit.py \\
        [--threads 1 2] [--repeats 3] [--json benchmarks/results/rr_gate_fit_speed.json]

The recipe's stage (trees on 7 RR features, S weight 10) fitted on the 22 DS1 records'
beats, as ``trainer.after_training_on: train+valid`` does, without (the baseline) and with
``min_ppv`` (its 22-fold record CV); median wall time of ``--repeats`` fits each, same
process, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medtorch.ecg.evaluation import recipe_beats
from medtorch.ecg.records import DS1
from medtorch.models.rr_gate import RRGate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    b = recipe_beats(list(DS1))
    rows = []
    for threads in a.threads:
        torch.set_num_threads(threads)  # the gate ties scikit-learn's threads to this
        med = {}
        for min_ppv in (None, 0.5):
            times = []
            for _ in range(a.repeats):
                gate = RRGate(7, n_classes=5, weight=10.0, method="trees", min_ppv=min_ppv)
                t0 = time.perf_counter()
                gate.fit(b["rr"], b["y"], b["record"])
                times.append(time.perf_counter() - t0)
            med[min_ppv] = float(np.median(times))
            rows.append({"threads": threads, "min_ppv": min_ppv, "median_s": round(med[min_ppv], 2),
                         "times_s": [round(t, 2) for t in times],
                         "offset": round(float(gate.offset), 6)})  # fmt: skip
            print(rows[-1], flush=True)
        print(
            f"threads {threads}: CV operating point costs {med[0.5] / med[None]:.1f}x the plain fit"
        )
    if a.json:
        a.json.write_text(json.dumps({"n_beats": len(b["y"]), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()

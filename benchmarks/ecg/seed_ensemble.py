"""AAMI test metrics of an ensemble of beat runs: the mean of their test probabilities.

    .venv/bin/python benchmarks/ecg/seed_ensemble.py RUN_DIR RUN_DIR ... [--size K] [--json FILE]

Reads each run's ``predictions_test.csv`` (same test beats in the same order, checked),
averages the class probabilities, takes the argmax and scores it with
:func:`medtorch.metrics.aami_report` (CIs resampled by record). An analysis of what
averaging seeds would give, not a medtorch command.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from medtorch.ecg.beats import AAMI_CLASSES
from medtorch.metrics.aami import aami_report


def score_ensemble(runs: list[Path]) -> tuple[dict[str, float], dict]:
    """AAMI report of the mean of ``runs``' test probabilities (and its short summary)."""
    ids, groups, y, probs = None, None, None, []
    for run in runs:
        with (run / "predictions_test.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        run_ids = [r["sample_id"] for r in rows]
        if ids is None:
            ids, groups = run_ids, np.array([r["group"] for r in rows])
            y = np.array([int(r["y_true"]) for r in rows])
        elif run_ids != ids:
            raise SystemExit(f"error: {run} has other test beats than {runs[0]}")
        probs.append(np.array([[float(r[f"p_{c}"]) for c in AAMI_CLASSES] for r in rows]))
    assert y is not None and groups is not None
    pred = np.mean(probs, axis=0).argmax(axis=1)
    rep = aami_report(y, pred, groups=groups, n_bootstrap=1000)
    pc = rep["per_class"]
    short = {f"{c} {k}": round(100 * float(pc[c][k]["value"] or 0.0), 1)
             for c in ("N", "S", "V") for k in ("Se", "+P")}  # fmt: skip
    short["accuracy"] = round(100 * float(rep["overall"]["accuracy"]["value"]), 1)
    short["kappa"] = round(float(rep["overall"]["cohen_kappa"]["value"]), 3)
    return short, rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--size", type=int, default=0,
                    help="score consecutive groups of this many runs as separate ensembles "
                         "and give their mean and sd (e.g. 9 seeds, --size 3)")  # fmt: skip
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    size = a.size or len(a.runs)
    if len(a.runs) % size:
        raise SystemExit(f"error: {len(a.runs)} runs do not split into groups of {size}")
    out = []
    for i in range(0, len(a.runs), size):
        group = a.runs[i : i + size]
        short, rep = score_ensemble(group)
        print(json.dumps({"runs": [r.name for r in group], **short}))
        out.append({"runs": [r.name for r in group], "summary": short, "report": rep})
    if len(out) > 1:
        keys = list(out[0]["summary"])
        vals = {k: np.array([o["summary"][k] for o in out]) for k in keys}
        spread = {k: [round(float(v.mean()), 3), round(float(v.std(ddof=1)), 3)]
                  for k, v in vals.items()}  # fmt: skip
        print("mean, sd over ensembles:", json.dumps(spread))
    if a.json:
        result = out[0] if len(out) == 1 else {"ensembles": out, "mean_sd": spread}
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

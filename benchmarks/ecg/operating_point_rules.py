"""Scratch-grade DS1 check: which rule for the RR stage's threshold holds on unseen records?

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/operating_point_rules.py \\
        --json benchmarks/results/ecg_operating_point_rules.json

Nested like ``ecg/rr_gate_operating_point.py`` (outer: leave one DS1 record out; inner:
leave-one-record-out CV scores of the recipe's stage on the other 21), but one inner CV
per outer fold serves several rules for the threshold, each applied to the held-out
record's scores from the stage fitted on the 21:

- ``pooled50`` / ``pooled60``: the most sensitive threshold with pooled CV +P >= 0.5 / 0.6
  (``rr_gate_min_ppv``);
- ``jackknife_median50``: the median of ``pooled50`` over the inner CV scores with one more
  S-bearing record left out each time (aimed at the instability of ``pooled50``);
- ``zero``: the weighted fit's own threshold (session 4's point).

Run once after the session-5 DS2 runs, to decide what to try next; DS2 is not read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

from medtorch.ecg.evaluation import recipe_beats, s_scores
from medtorch.ecg.records import DS1
from medtorch.models.rr_gate import RRGate, min_ppv_threshold


def pooled(cv: np.ndarray, t: np.ndarray, floor: float) -> float:
    """The threshold RRGate's ``min_ppv`` would choose from these CV scores."""
    return min_ppv_threshold(cv, t, floor)[0]


RULES = {
    "pooled50": lambda cv, t, g: pooled(cv, t, 0.5),
    "pooled60": lambda cv, t, g: pooled(cv, t, 0.6),
    "jackknife_median50": lambda cv, t, g: float(
        np.median([pooled(cv[g != k], t[g != k], 0.5) for k in np.unique(g[t == 1])])
    ),
    "zero": lambda cv, t, g: 0.0,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    b = recipe_beats(list(DS1))
    keep = b["y"] <= 1
    rec, s = b["record"][keep].astype(str), b["y"][keep] == 1
    f = b["rr"][keep, :7].astype(np.float64)
    called = {k: np.zeros(len(s), bool) for k in RULES}
    offsets: dict[str, dict[str, float]] = {k: {} for k in RULES}
    t0 = time.perf_counter()
    for r in DS1:
        te = rec == r
        gate = RRGate(7, n_classes=2, weight=10.0, method="trees")
        t_in = s[~te].astype(int)
        cv = cross_val_predict(gate.estimator(), f[~te], t_in, groups=rec[~te],
                               cv=LeaveOneGroupOut(), method="decision_function")  # fmt: skip
        gate.fit(f[~te], t_in)
        with torch.no_grad():
            held_out = gate.score(torch.as_tensor(f[te])).numpy()
        for k, rule in RULES.items():
            offsets[k][r] = round(rule(cv, t_in, rec[~te]), 3)
            called[k][te] = held_out > offsets[k][r]
        print(r, {k: offsets[k][r] for k in RULES}, f"{time.perf_counter() - t0:.0f} s", flush=True)
    out = {"scores": {k: s_scores(s, called[k]) for k in RULES}, "offsets": offsets}
    for k, v in out["scores"].items():
        print(k, v, "offsets", min(offsets[k].values()), max(offsets[k].values()))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

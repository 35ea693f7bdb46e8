"""Choosing the RR gate of mitdb_aami_resnet1d by leave-one-record-out CV inside DS1.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/rr_gate_cv.py \\
        --json benchmarks/results/ecg_rr_gate_cv.json

The question: which second stage, on which RR features, best tells SVEB (S) from normal
(N) beats of a patient never seen in training? Candidates, each fitted exactly as the
model fits its :class:`medtorch.models.rr_gate.RRGate` (S weighted w): logistic regression
(6 weights) and gradient-boosted trees (2 weights, as they are slow) on
- ``pn7`` / ``pn24``: the first 7 / all 24 patient-relative RR features of the recipe
  (``task.params.patient_norm``, :func:`medtorch.ecg.features.patient_relative`);
- ``raw4``: previous, next, local and record-mean RR in seconds (de Chazal et al. 2004);
- ``raw4+pn7``: both.

Protocol: for each of the 22 DS1 records, fit on the N and S beats of the other 21 and
predict that record's N and S beats (the network upstream is assumed to have set V, F and
Q aside); S is called where the stage's P(S | N or S) > 0.5. Pooled over DS1: S
sensitivity, +P and F1. **The rule: the candidate with the
highest DS1 F1 is the recipe's gate.** DS2 columns (fit on all of DS1) are printed for
the record, after the fact; they were not used to choose and must not be.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medtorch.ecg.evaluation import Predictor, gate_predict, recipe_beats, s_scores
from medtorch.ecg.records import DS1, DS2

LR_WEIGHTS = (5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
HGB_WEIGHTS = (10.0, 20.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    records = list(DS1) + list(DS2)
    pn = recipe_beats(records, a.data_dir)
    raw = recipe_beats(records, a.data_dir, patient_norm=False)
    assert np.array_equal(pn["y"], raw["y"]) and np.array_equal(pn["sample"], raw["sample"])
    rec, y = pn["record"], pn["y"]
    keep = y <= 1  # N = 0, S = 1
    rec, s = rec[keep], y[keep] == 1
    feats = {
        "pn7": pn["rr"][keep, :7],
        "pn24": pn["rr"][keep],
        "raw4": raw["rr"][keep],
        "raw4+pn7": np.concatenate([raw["rr"][keep], pn["rr"][keep, :7]], axis=1),
    }
    cands: list[tuple[str, str, float, Predictor]] = [
        ("logistic", f, w, gate_predict("logistic", w)) for f in feats for w in LR_WEIGHTS
    ] + [("trees", f, w, gate_predict("trees", w)) for f in ("pn7", "pn24") for w in HGB_WEIGHTS]
    ds1, ds2 = np.isin(rec, DS1), np.isin(rec, DS2)
    rows = []
    for model, fname, w, predict in cands:
        t0 = time.perf_counter()
        f = feats[fname]
        pred = np.zeros(len(s), bool)
        for r in DS1:
            te = rec == r
            pred[te] = predict(f[ds1 & ~te], s[ds1 & ~te], f[te])
        cv = s_scores(s[ds1], pred[ds1])
        test = s_scores(s[ds2], predict(f[ds1], s[ds1], f[ds2]))
        rows.append({"model": model, "features": fname, "S_weight": w,
                     "ds1_loro": cv, "ds2_not_used": test})  # fmt: skip
        print(f"{model:8s} {fname:9s} w={w:4.1f}  DS1 LORO Se {cv['Se']:5.1f} +P {cv['+P']:5.1f} "
              f"F1 {cv['F1']:5.1f} | DS2 (not used) Se {test['Se']:5.1f} +P {test['+P']:5.1f} "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    best = max(rows, key=lambda r: r["ds1_loro"]["F1"])
    print(
        f"chosen by DS1 LORO F1: {best['model']} on {best['features']}, S weight "
        f"{best['S_weight']} (F1 {best['ds1_loro']['F1']})"
    )
    if a.json:
        a.json.write_text(json.dumps({
            "protocol": "leave-one-DS1-record-out, N and S beats only, pooled; DS2 columns "
                        "fit on all DS1, printed after the fact, not used to choose",
            "n_beats": {"DS1": {"N": int((ds1 & ~s).sum()), "S": int((ds1 & s).sum())},
                        "DS2": {"N": int((ds2 & ~s).sum()), "S": int((ds2 & s).sum())}},
            "rows": rows, "chosen": best,
        }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()

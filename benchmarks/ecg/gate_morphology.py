"""Which beat-shape features, beside the RR features, help the RR gate on new patients?

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/gate_morphology.py \\
        --json benchmarks/results/ecg_gate_morphology.json

The recipe's gate (trees on the first 7 patient-relative RR features, S weight 10, see
``ecg/rr_gate_cv.py``) tells SVEB from normal beats by prematurity alone. An atrial
premature beat also has an early, odd or hidden P wave. Candidates: the recipe's 7 RR
features plus :func:`medtorch.ecg.features.morphology_measures` of the beat against
its record's median beat (P-wave correlation, RMS difference and amplitude ratio; QRS
correlation and RMS difference; ST-T RMS difference), either raw or as robust z-scores
within the record (:data:`~medtorch.ecg.features.MORPH_FEATURES`), all six or a few.

Protocol as in ``ecg/rr_gate_cv.py``: leave one DS1 record out, fit on the N and S beats
of the other 21, call S where the gate's score > 0; pooled S Se, +P and F1 over DS1.
**The rule: the candidate with the highest DS1 F1 goes into the recipe.** DS2 is not read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.ecg.beats import window_bounds
from medtorch.ecg.evaluation import gate_predict, loro_predict, recipe_beats, s_scores
from medtorch.ecg.features import MORPH_FEATURES, N_PATIENT_RR, morphology_measures, robust_z
from medtorch.ecg.records import DS1

N_RR, WEIGHT = 7, 10.0  # the recipe's gate (model.params.rr_gate_*)


def candidates(rr: np.ndarray, raw: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    """Feature matrices by name: the 7 RR features, plus raw or z-scored shape measures."""
    names = list(MORPH_FEATURES)
    col = {n: i for i, n in enumerate(names)}
    with_z = {
        "z: P corr + P rms": ["z_p_corr", "z_p_rms"],
        "z: P corr + P rms + QRS rms": ["z_p_corr", "z_p_rms", "z_qrs_rms"],
        "z: all 6": names,
    }
    out = {"RR only (the recipe's gate until now)": rr, "raw: all 6": np.hstack([rr, raw])}
    out |= {f"z: {n} alone": np.hstack([rr, z[:, [col[n]]]]) for n in names}
    out |= {k: np.hstack([rr, z[:, [col[n] for n in v]]]) for k, v in with_z.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    beats = recipe_beats(list(DS1), a.data_dir, morph_features=True)
    before, _ = window_bounds((0.25, 0.45), 180.0)
    rec_all = beats["record"]
    raw = np.zeros((len(rec_all), len(MORPH_FEATURES)))
    for r in DS1:  # the raw measures, per record (the task keeps only their z-scores)
        m = rec_all == r
        raw[m] = morphology_measures(beats["x"][m], 180.0, before)
    z = beats["rr"][:, N_PATIENT_RR:]
    for r in DS1[:3]:  # the task's z-scores are the raw measures' within-record z-scores
        m = rec_all == r
        want = np.stack([robust_z(c) for c in raw[m].T], 1)
        assert np.allclose(z[m], want, atol=1e-4), r
    keep = beats["y"] <= 1  # N = 0, S = 1
    rec, s = rec_all[keep], beats["y"][keep] == 1
    cands = candidates(beats["rr"][keep, :N_RR], raw[keep], z[keep])
    predict = gate_predict("trees", WEIGHT)
    rows = []
    for name, f in cands.items():
        t1 = time.perf_counter()
        pred = loro_predict(predict, f, s, rec)
        row = {"features": name, "n_features": f.shape[1], **s_scores(s, pred)}
        rows.append(row)
        print(row, f"[{time.perf_counter() - t1:.0f} s]", flush=True)
    best = max(rows, key=lambda r: r["F1"])
    print("chosen by DS1 leave-one-record-out F1:", best)
    out: dict[str, Any] = {
        "protocol": "leave-one-DS1-record-out, N and S beats only, trees, S weight 10, "
        "S where score > 0; pooled over DS1; DS2 not read",
        "n_beats": {"N": int((~s).sum()), "S": int(s.sum())},
        "rows": rows,
        "chosen": best,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""The beat-shape features' reference beat, checked inside DS1, normal and with premature
beats in the majority.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/morph_reference.py \\
        --json benchmarks/results/ecg_morph_reference.json

Why: the shape features (``task.params.morph_features``) compare each beat with its
record's usual beat and z-score the result within the record. With ``morph_reference:
all`` the usual beat is the median of all beats, which fails where premature beats
outnumber normal ones: there the median beat is premature and the normal beats look odd.
DS1 has no such record; DS2's 232 (1,382 APCs, 398 normal beats) is one, and this was
found there (benchmarks/RESULTS.md, section 2.1, "Beat-shape features"). ``morph_reference: on_time`` takes the
usual beat from the beats whose previous RR is at least the record's mean RR; ``auto`` does
so only where fewer than a quarter of the beats are on time. ``rr_only``: the gate on the 7
RR features alone, for comparison (its features do not depend on the reference).

Two checks, DS1 only, the recipe's gate (trees, S weight 10, 7 RR + 6 shape features),
for each reference: (1) leave one DS1 record out, as in ``ecg/gate_morphology.py``;
(2) the same gates, on a stressed copy of each held-out record with at least
``--min-s`` S beats: all its S beats and a random subset of its N beats (``--ratio`` S
per N, 232's 3.47 by default; other beats kept), the shape features computed again on
that copy as they would be on such a record. DS2 is not read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.ecg.beats import window_bounds
from medtorch.ecg.evaluation import MORPH_GATE_COLS as COLS
from medtorch.ecg.evaluation import gate_predict, recipe_beats, s_scores
from medtorch.ecg.features import (
    MORPH_REFERENCES,
    N_PATIENT_RR,
    morph_reference_mask,
    morphology_features,
)
from medtorch.ecg.records import DS1

N_RR, WEIGHT, FS = 7, 10.0, 180.0


def stressed(
    beats: dict[str, Any], r: str, ratio: float, reference: str, cols: list[int], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gate features, S labels of record ``r`` with its N beats cut to one per ``ratio`` S."""
    m = np.flatnonzero(beats["record"] == r)
    y = beats["y"][m]
    n_idx, s_idx = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    rng = np.random.default_rng(seed)
    keep_n = rng.choice(n_idx, size=max(round(len(s_idx) / ratio), 1), replace=False)
    sub = np.sort(np.concatenate([keep_n, s_idx, np.flatnonzero(y > 1)]))
    rr = beats["rr"][m][sub].copy()
    b = beats["x"][m][sub, 0].astype(np.float64)
    xp = np.stack([b, b - np.median(b, axis=0)], axis=1)  # as patient_relative on this copy
    before, _ = window_bounds((0.25, 0.45), FS)
    rr[:, N_PATIENT_RR:] = morphology_features(
        xp, FS, before, morph_reference_mask(reference, rr[:, 0])
    )
    pair = y[sub] <= 1
    return rr[pair][:, cols], y[sub][pair] == 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--ratio", type=float, default=1382 / 398)
    ap.add_argument("--min-s", type=int, default=50)
    ap.add_argument("--references", nargs="+", default=[*MORPH_REFERENCES, "rr_only"],
                    choices=[*MORPH_REFERENCES, "rr_only"])  # fmt: skip
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"ratio_S_per_N": round(a.ratio, 3), "min_S": a.min_s, "rows": []}
    predict = gate_predict("trees", WEIGHT)
    for reference in a.references:
        ref = "all" if reference == "rr_only" else reference
        cols = COLS[:N_RR] if reference == "rr_only" else COLS
        beats = recipe_beats(list(DS1), a.data_dir, morph_features=True, morph_reference=ref)
        keep = beats["y"] <= 1
        rec, s = beats["record"][keep], beats["y"][keep] == 1
        f = beats["rr"][keep][:, cols]
        pred = np.zeros(len(s), bool)
        st_true, st_pred, stressed_records = [], [], []
        for r in DS1:
            te = rec == r
            pred[te] = predict(f[~te], s[~te], f[te])
            if s[te].sum() >= a.min_s:
                fs_, ss = stressed(beats, r, a.ratio, ref, cols)
                st_true.append(ss)
                st_pred.append(predict(f[~te], s[~te], fs_))
                stressed_records.append(r)
        st_t, st_p = np.concatenate(st_true), np.concatenate(st_pred)
        row = {
            "morph_reference": reference,
            "loro": s_scores(s, pred),
            "stressed": s_scores(st_t, st_p),
            "stressed_records": stressed_records,
            "stressed_by_record": {
                r: s_scores(t, p) | {"S": int(t.sum()), "N": int((~t).sum())}
                for r, t, p in zip(stressed_records, st_true, st_pred)
            },
        }
        out["rows"].append(row)
        print(json.dumps({k: row[k] for k in ("morph_reference", "loro", "stressed")}),
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

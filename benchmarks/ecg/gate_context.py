"""Does the RR stage gain from the neighbouring beats' RR intervals? DS1 only.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/gate_context.py \\
        --json benchmarks/results/ecg_gate_context.json

The recipe's stage (trees, S weight 10) reads 7 RR features of the beat and its 6 shape
features (``medtorch.ecg.evaluation.MORPH_GATE_COLS``). The task also computes the RR intervals of
the 8 beats before and after it, each over the record's mean RR (columns 7-23, the
network's RR sequence). Runs of ectopic beats, bigeminy and flutter show in that sequence
rather than in one interval. Candidates: the recipe's 13 columns; plus the +-2 neighbours;
plus all 17. Leave one DS1 record out, N and S beats, the recipe's ``morph_reference:
auto``. Rule, committed with this script before its run: a candidate replaces the recipe's
columns only if its pooled S F1 is at least 2 points higher; the best such one. DS2 is not
read here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from medtorch.ecg.evaluation import (
    MORPH_GATE_COLS,
    gate_predict,
    loro_predict,
    recipe_beats,
    s_scores,
)
from medtorch.ecg.features import PATIENT_RR_FEATURES, RR_SEQUENCE_BEATS
from medtorch.ecg.records import DS1

WEIGHT = 10.0
STRIP0 = PATIENT_RR_FEATURES.index("log_rr_+0_over_record")  # the beat's own interval


def candidates() -> dict[str, list[int]]:
    near = [STRIP0 + j for j in (-2, -1, 1, 2)]
    every = [STRIP0 + j for j in range(-RR_SEQUENCE_BEATS, RR_SEQUENCE_BEATS + 1) if j != 0]
    return {
        "recipe (7 RR + 6 shape)": MORPH_GATE_COLS,
        "+ RR of the +-2 neighbours": MORPH_GATE_COLS + near,
        "+ RR of the +-8 neighbours": MORPH_GATE_COLS + every,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    beats = recipe_beats(list(DS1), a.data_dir, morph_features=True, morph_reference="auto")
    keep = beats["y"] <= 1
    rec, s = beats["record"][keep], beats["y"][keep] == 1
    predict = gate_predict("trees", WEIGHT)
    rows = []
    for name, cols in candidates().items():
        pred = loro_predict(predict, beats["rr"][keep][:, cols], s, rec)
        per_record = {r: {"S": int(s[rec == r].sum()), "found": int((s & pred)[rec == r].sum()),
                          "false": int((~s & pred)[rec == r].sum())} for r in DS1}  # fmt: skip
        row = {"features": name, "columns": cols, **s_scores(s, pred), "per_record": per_record}
        rows.append(row)
        print({k: row[k] for k in ("features", "Se", "+P", "F1")},
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)  # fmt: skip
    base = rows[0]["F1"]
    better = [r for r in rows[1:] if r["F1"] >= base + 2.0]
    chosen = max(better, key=lambda r: r["F1"]) if better else rows[0]
    print("chosen:", chosen["features"])
    out: dict[str, Any] = {
        "protocol": "leave-one-DS1-record-out, N and S beats, trees, S weight 10, score > 0, "
        "morph_reference auto; replace the recipe's columns only at +2 F1; DS2 not read",
        "rows": rows,
        "chosen": chosen["features"],
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""How much one record carries: AAMI S and V Se / +P of finished runs, with and without it.

    .venv/bin/python benchmarks/ecg/leave_record_out.py runs/ecg/mitdb_aami_resnet1d_s[012]-* \\
        --without 232 [--json benchmarks/results/ecg_without_232.json]

DS2's SVEB beats are dominated by record 232 (1,382 of 1,837 S beats), so a DS2 SVEB number
is largely a number about one patient. This re-scores each run's own test predictions
(``predictions_test.csv``: ``group``, ``y_true``, ``y_pred``) with
:func:`medtorch.metrics.aami.aami_report` on all test records and on all but ``--without``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from medtorch.metrics.aami import aami_report


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    pc = aami_report(y, pred, n_bootstrap=0)["per_class"]
    return {f"{c} {k}": None if pc[c][k]["value"] is None else round(100 * pc[c][k]["value"], 1)
            for c in ("S", "V") for k in ("Se", "+P")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--without", nargs="+", required=True, help="record names to leave out")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out: dict[str, dict] = {}
    for run in a.runs:
        with open(run / "predictions_test.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        g = np.array([r["group"] for r in rows])
        y, pred = (np.array([int(r[k]) for r in rows]) for k in ("y_true", "y_pred"))
        keep = ~np.isin(g, a.without)
        out[run.name] = {
            "all records": _scores(y, pred),
            f"without {'+'.join(a.without)}": _scores(y[keep], pred[keep]),
            "S beats left out": int(((y == 1) & ~keep).sum()),
            "S beats kept": int(((y == 1) & keep).sum()),
        }
        print(run.name, json.dumps(out[run.name]))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

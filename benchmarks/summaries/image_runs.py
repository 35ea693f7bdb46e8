"""Mean and sd over seeds of image runs' test metrics (read from each run's metrics.json).

    .venv/bin/python benchmarks/summaries/image_runs.py RUN_DIR... --json OUT.json

For every run: test accuracy, balanced accuracy, macro AUROC (one-vs-rest) and macro F1 with
their CIs, the best epoch, each class's one-vs-rest AUROC (``auroc_<class>``), and the ordinal (kappa, referable) or decision (e.g. malignant)
block when the task has one. Prints one Markdown table (mean +- sd over the runs, then each
run) and writes all values to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

OVERALL = ("accuracy", "balanced_accuracy", "auroc", "macro_f1")


def run_values(run: Path) -> dict[str, Any]:
    m = json.loads((run / "metrics.json").read_text())
    test = m["test"]
    row: dict[str, Any] = {"run": run.name, "best_epoch": m.get("best_epoch")}
    for k in OVERALL:
        row[k] = test["overall"][k]["value"]
        row[f"{k}_ci"] = test["overall"][k]["ci"]
    for name, per in (test.get("per_class") or {}).items():  # one-vs-rest, e.g. melanoma
        if isinstance(per.get("auroc"), dict):
            row[f"auroc_{name}"], row[f"auroc_{name}_ci"] = (
                per["auroc"]["value"],
                per["auroc"]["ci"],
            )
    for block in ("ordinal", "decision"):
        for k, v in (test.get(block) or {}).items():
            if isinstance(v, dict):
                row[k], row[f"{k}_ci"] = v["value"], v["ci"]
    row["leakage_note"] = m.get("leakage_note")
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--json", type=Path, required=True)
    a = p.parse_args()
    rows = [run_values(r) for r in a.runs]
    keys = [k for k in rows[0] if not k.endswith("_ci") and k not in ("run", "leakage_note")]
    summary = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        if vals:
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            summary[k] = {"mean": statistics.mean(vals), "sd": sd}
    print("| metric | mean +- sd | " + " | ".join(r["run"] for r in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for k in keys:
        if k in summary:
            cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for r in rows]
            s = summary[k]
            print(f"| {k} | {s['mean']:.3f} +- {s['sd']:.3f} | " + " | ".join(cells) + " |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"runs": rows, "mean_sd": summary}, indent=1) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

"""Validation AND test AAMI numbers of a list of beat runs, as a markdown table and JSON.

    .venv/bin/python benchmarks/summaries/ecg_tuning_table.py RUN_DIR ... [--json FILE]

For a record of tuning runs: it prints each run's DS1-validation and DS2-test SVEB Se/+P,
VEB Se/+P and kappa side by side, so RESULTS.md can say which numbers were seen while
choosing a recipe. Run names are the part of the folder name before the first '-'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medtorch.ecg.evaluation import aami_rows


def summary(aami: dict[str, Any]) -> dict[str, float]:
    return aami_rows(aami, ("S", "V"), ("Se", "+P"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    print("| run | best epoch | valid S Se / +P | valid V Se / +P | valid kappa "
          "| test S Se / +P | test V Se / +P | test kappa |")  # fmt: skip
    print("|---|---:|---|---|---:|---|---|---:|")
    for run in args.runs:
        m = json.loads((run / "metrics.json").read_text())
        v, t = summary(m["valid"]["aami"]), summary(m["test"]["aami"])
        name = run.name.split("-")[0]
        out[name] = {"run": run.name, "best_epoch": m["best_epoch"], "valid": v, "test": t}
        print(f"| {name} | {m['best_epoch']} | {v['S Se']:.1f} / {v['S +P']:.1f} | "
              f"{v['V Se']:.1f} / {v['V +P']:.1f} | {v['kappa']:.3f} | {t['S Se']:.1f} / "
              f"{t['S +P']:.1f} | {t['V Se']:.1f} / {t['V +P']:.1f} | {t['kappa']:.3f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Mean and sd over runs (e.g. seeds) of the AAMI test metrics, as a markdown table.

    .venv/bin/python benchmarks/summaries/ecg_runs.py runs/mitdb_aami_resnet1d-s*  [--part test]
    .venv/bin/python benchmarks/summaries/ecg_runs.py --af runs/mitdb_af_resnet1d-*

Reads each run's ``metrics.json``; beat runs use ``<part>.aami`` (Se, +P, F1 per class,
accuracy, kappa), AF runs ``<part>.per_class.af`` and ``<part>.overall``. Values in %,
except kappa; a NaN (e.g. +P of a class never predicted) is left out of
the mean and sd. Also writes the numbers as JSON with ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.ecg.evaluation import aami_rows


def _v(entry: Any) -> float:
    v = entry.get("value") if isinstance(entry, dict) else None
    return float("nan") if v is None else float(v)


def beat_rows(metrics: dict[str, Any]) -> dict[str, float]:
    return aami_rows(metrics["aami"])


def af_rows(metrics: dict[str, Any]) -> dict[str, float]:
    af = metrics["per_class"]["af"]
    out = {k: 100 * _v(af.get(k)) for k in ("sensitivity", "specificity", "ppv", "f1")}
    out["accuracy"] = 100 * _v(metrics["overall"].get("accuracy"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--part", default="test")
    p.add_argument("--af", action="store_true", help="AF window runs (mitdb_af_windows)")
    p.add_argument(
        "--pool",
        action="store_true",
        help="also score the runs' test predictions pooled (e.g. the folds of a k-fold CV)",
    )
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    per_run = {}
    for run in a.runs:
        m = json.loads((run / "metrics.json").read_text())[a.part]
        per_run[run.name] = af_rows(m) if a.af else beat_rows(m)
    keys = list(next(iter(per_run.values())))
    print("| metric | " + " | ".join(per_run) + " | mean ± sd |")
    print("|---" * (len(per_run) + 2) + "|")
    summary = {}
    for k in keys:
        vals = [r[k] for r in per_run.values()]
        ok = np.array([v for v in vals if v == v])  # NaN (e.g. +P of a class never predicted)
        mean = float(ok.mean()) if len(ok) else float("nan")
        sd = float(ok.std(ddof=1)) if len(ok) > 1 else float("nan")
        summary[k] = {"mean": mean, "sd": sd, "values": vals}
        print(f"| {k} | " + " | ".join(f"{v:.3f}" if k == "kappa" else f"{v:.1f}" for v in vals)
              + (f" | {mean:.3f} ± {sd:.3f} |" if k == "kappa" else f" | {mean:.1f} ± {sd:.1f} |"))  # fmt: skip
    report: dict[str, Any] = {"part": a.part, "runs": per_run, "summary": summary}
    if a.pool:
        report["pooled"] = pooled(a.runs)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=2))


def pooled(runs: list[Path]) -> dict[str, Any]:
    """Score the concatenated ``predictions_test.csv`` of ``runs`` with CIs resampled by group.

    For k-fold runs whose test folds partition the records, this is the cross-validated
    estimate in which every record is tested exactly once.
    """
    import csv

    from medtorch.metrics import evaluate

    rows = [r for run in runs for r in csv.DictReader((run / "predictions_test.csv").open())]
    names = [c[2:] for c in rows[0] if c.startswith("p_")]
    y = np.array([int(r["y_true"]) for r in rows])
    proba = np.array([[float(r[f"p_{c}"]) for c in names] for r in rows])
    groups = np.array([r["group"] for r in rows])
    m = evaluate(y, proba, names, groups=groups, n_bootstrap=1000, seed=0)
    print(f"\npooled over {len(runs)} runs: n={m['n']} windows/beats, {m['n_groups']} groups; "
          f"CI: {m['ci_method']}")  # fmt: skip
    out = {}
    for cls in names:
        for k in ("sensitivity", "specificity", "ppv", "f1"):
            e = m["per_class"][cls][k]
            ci = e.get("ci") or [float("nan"), float("nan")]
            out[f"{cls} {k}"] = {"value": e["value"], "ci": ci}
            if cls == names[-1]:
                print(f"{cls} {k}: {100 * e['value']:.1f} ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})")
    acc = m["overall"]["accuracy"]
    out["accuracy"] = {"value": acc["value"], "ci": acc.get("ci")}
    return out


if __name__ == "__main__":
    main()

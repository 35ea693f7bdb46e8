"""Seizure recipes over seeds and splits, through the CLI, summarised as mean and sd.

    .venv/bin/python benchmarks/eeg/seizure_seeds.py seizure_resnet1d seizure_binary \\
        --seeds 0 1 2 --splits random by_recording --jobs 2 --out runs/seeds

Each run is ``medtorch train RECIPE --set trainer.seed=S --set split.method=M`` (the split
itself keeps the recipe's seed 6250, so the seeds vary the training only). Reads every run's
``metrics.json`` and writes ``benchmarks/results/seizure_seeds.json`` and a markdown table.
A random split by rows leaks recordings (chunks of one recording on both sides); the table
says so next to those numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("accuracy", "balanced_accuracy", "auroc", "macro_f1")


def run_one(recipe: str, seed: int, split: str, out: Path, threads: int | None) -> dict[str, Any]:
    sets = [f"trainer.seed={seed}", f"split.method={split}", "trainer.progress=false",
            f"name={recipe}-{split}-s{seed}"]  # fmt: skip
    if threads:
        sets.append(f"trainer.num_threads={threads}")
    cmd = [sys.executable, "-m", "medtorch.cli", "-q", "train", recipe, "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    run_dir = Path(
        next(ln for ln in proc.stdout.splitlines() if ln.startswith("run folder:")).split(": ", 1)[
            1
        ]
    )
    return {**read_run(run_dir), "wall_s": round(wall, 1)}


def read_run(run_dir: Path) -> dict[str, Any]:
    """The row of an existing run folder (recipe, split and seed from its config.yaml)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    m = json.loads((run_dir / "metrics.json").read_text())
    test = m["test"]["overall"]
    return {"recipe": cfg["name"].rsplit("-", 2)[0], "seed": cfg["trainer"]["seed"],
            "split": cfg["split"]["method"], "run_dir": str(run_dir), "tta": cfg["eval"].get("tta"),
            "best_epoch": m.get("best_epoch"), "leakage_note": m.get("leakage_note"),
            "ci_method": m["test"]["ci_method"],
            **{k: test[k]["value"] for k in METRICS},
            **{f"{k}_ci": test[k]["ci"] for k in METRICS}}  # fmt: skip


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["split"]), []).append(r)
    out = []
    for (recipe, split), rs in sorted(groups.items()):
        s: dict[str, Any] = {"recipe": recipe, "split": split, "n_seeds": len(rs)}
        for k in METRICS:
            vals = [r[k] for r in rs if r[k] is not None]
            s[k] = {"mean": statistics.mean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "values": vals}  # fmt: skip
        out.append(s)
    return out


def table(summary: list[dict[str, Any]]) -> str:
    lines = ["| recipe | split | seeds | test accuracy | balanced acc. | AUROC | macro F1 |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for s in summary:
        cells = [f"{s[k]['mean']:.4f} ± {s[k]['sd']:.4f}" for k in METRICS]
        split = s["split"] + (" (leaks recordings: optimistic)" if s["split"] == "random" else "")
        lines.append(f"| {s['recipe']} | {split} | {s['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*")
    p.add_argument(
        "--from-runs",
        nargs="+",
        type=Path,
        default=[],
        help="summarise these existing run folders instead of training",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--splits", nargs="+", default=["random", "by_recording"])
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each on one thread when > 1)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "seeds")
    p.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "seizure_seeds.json"
    )
    a = p.parse_args()
    jobs = [(r, s, m) for r in a.recipes for m in a.splits for s in a.seeds]
    threads = 1 if a.jobs > 1 else None
    with ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda j: run_one(*j, a.out, threads), jobs))
    rows += [read_run(d) for d in a.from_runs]
    jobs += [(r["recipe"], r["seed"], r["split"]) for r in rows[len(rows) - len(a.from_runs) :]]
    a.json.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(a.json.read_text()) if a.json.is_file() else {"runs": []}
    keep = [
        r
        for r in old["runs"]
        if (r["recipe"], r["split"], r["seed"]) not in {(x[0], x[2], x[1]) for x in jobs}
    ]
    all_rows = keep + rows
    a.json.write_text(json.dumps({"command": " ".join(sys.argv), "runs": all_rows,
                                  "summary": summarise(all_rows)}, indent=1))  # fmt: skip
    print(table(summarise(all_rows)))


if __name__ == "__main__":
    main()

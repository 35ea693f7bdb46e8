"""Distributed data parallel on the CPU: torchrun with 2 gloo processes vs one process.

For each recipe (UCI seizure data under ``$MEDTORCH_DATA``), three ways to train the same
recipe for ``--epochs`` epochs, each a whole ``medtorch`` process started by this script:

- ``one_1t``: ``medtorch demo``-style training in one process, 1 torch thread;
- ``one_2t``: one process, 2 torch threads (what a plain run on 2 cores can use);
- ``ddp_2x1t``: ``torchrun --standalone --nproc-per-node 2 -m medtorch ...``, 1 thread each.

Speed = training rows/s of an epoch's optimisation steps (``train_samples_per_s`` in the run's
history.csv, valid pass excluded), median over the epochs of a run and then over ``--repeats``
runs; the three run back to back in each repeat, and the ratios to ``one_2t`` are taken per
repeat and their median reported. Also written: whole-process wall time (data loading, process
start, scoring and the report included) and each run's final test accuracy and the relative
L2 distance of its last weights from the ``one_1t`` run (same recipe, same seed: DDP with the
global batch split in two should train the same model up to rounding).

    .venv/bin/python benchmarks/speed/ddp.py                       # ~15 min on 2 cores
    .venv/bin/python benchmarks/speed/ddp.py --recipes lab2_seizure_cnn --repeats 1 --epochs 1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def command(mode: str, recipe: str, epochs: int, out: Path) -> tuple[list[str], dict[str, str]]:
    sets = [f"trainer.max_epochs={epochs}", "trainer.progress=false", "eval.n_bootstrap=0",
            "trainer.patience=null", f"name={mode}"]  # fmt: skip
    threads = "2" if mode == "one_2t" else "1"
    sets.append(f"trainer.num_threads={threads}")
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    args = ["train", recipe, "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    if mode == "ddp_2x1t":
        return [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m",
                "medtorch", "-q", *args], env  # fmt: skip
    return [sys.executable, "-m", "medtorch", "-q", *args], env


def run_once(mode: str, recipe: str, epochs: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{mode}-{time.monotonic_ns()}"
    cmd, env = command(mode, recipe, epochs, out)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} {recipe} failed:\n{proc.stderr[-3000:]}")
    (run_dir,) = out.iterdir()
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return {
        "samples_per_s": statistics.median(float(r["train_samples_per_s"]) for r in rows),
        "wall_s": wall,
        "test_accuracy": metrics["test"]["overall"]["accuracy"]["value"],
        "world_size": state["world_size"],
        "weights": torch.cat([v.flatten().float() for v in state["model"].values()]),
    }


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per mode: raw and median speed and wall time, ratios to one_2t per repeat, accuracy,
    and the distance of the first repeat's weights from the first one_1t run."""
    ref = runs["one_1t"][0]["weights"]
    base = runs["one_2t"]
    out: dict[str, Any] = {}
    for m, rs in runs.items():
        speed = [r["samples_per_s"] for r in rs]
        wall = [r["wall_s"] for r in rs]
        out[m] = {
            "samples_per_s": [round(v, 1) for v in speed],
            "samples_per_s_median": round(statistics.median(speed), 1),
            "wall_s": [round(v, 2) for v in wall],
            "wall_s_median": round(statistics.median(wall), 2),
            "speed_ratio_to_one_2t": round(
                statistics.median(v / b["samples_per_s"] for v, b in zip(speed, base)), 3
            ),
            "wall_ratio_to_one_2t": round(
                statistics.median(v / b["wall_s"] for v, b in zip(wall, base)), 3
            ),
            "test_accuracy": [round(r["test_accuracy"], 4) for r in rs],
            "world_size": rs[0]["world_size"],
            "weights_rel_l2_to_one_1t": float(
                f"{float((rs[0]['weights'] - ref).norm() / ref.norm()):.3g}"
            ),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="lab2_seizure_cnn,seizure_resnet1d")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/ddp.json"))
    a = p.parse_args()
    modes = ("one_1t", "one_2t", "ddp_2x1t")
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "command": " ".join(["benchmarks/speed/ddp.py", *sys.argv[1:]]),
        "epochs": a.epochs,
        "repeats": a.repeats,
        "recipes": {},
    }
    with tempfile.TemporaryDirectory() as td:
        for recipe in a.recipes.split(","):
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
            for rep in range(a.repeats):
                for m in modes:
                    r = run_once(m, recipe, a.epochs, Path(td))
                    runs[m].append(r)
                    print(f"{recipe} repeat {rep + 1} {m}: {r['samples_per_s']:.0f} rows/s, "
                          f"{r['wall_s']:.1f} s, acc {r['test_accuracy']:.4f}", flush=True)  # fmt: skip
            result["recipes"][recipe] = summary = summarize(runs)
            print(json.dumps({recipe: summary}, indent=1), flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Time and peak memory of building EHR samples from MIMIC-III-shaped tables.

Each phase runs in its own Python process; this script samples the resident memory of that
process and all its children (psutil, every 20 ms) and reports the peak of their sum, the
wall time of the whole process (imports included) and the time of the build call itself:

- ``nocache``: read the CSVs (read_mimic3) and build the samples (build_samples), no cache;
- ``cold``: load_samples into an empty cache folder (build, then write events and samples);
- ``warm``: load_samples again, from the cache (a new process, as a second run would be);
- ``arrays``: warm load, then CodeVocab.fit on half the subjects and transform of all.

    python benchmarks/ehr/make_mimic3_copies.py --patients 100000 --out $TMPDIR/mimic3_100k
    python benchmarks/ehr/bench_ehr_build.py --data $TMPDIR/mimic3_100k --cache-dir $TMPDIR/ehr_cache
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

TABLES = ["DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS"]


def run_phase(phase: str, data: Path, cache: Path, task: str) -> dict:
    import numpy as np
    import polars as pl

    from medtorch.ehr import CodeVocab, build_samples, load_samples, read_mimic3

    cfg = {"tables": TABLES}
    t0 = time.perf_counter()
    out: dict = {}
    if phase == "nocache":
        events = read_mimic3(data, tables=TABLES)
        out["read_s"] = time.perf_counter() - t0
        out["events"] = events.height
        t1 = time.perf_counter()
        samples = build_samples(events, task)
        out["samples_s"] = time.perf_counter() - t1
    else:
        samples = load_samples("mimic3", data, task, None, cfg, cache_dir=cache)
        out["cache_hit"] = samples.cohort["cache_hit"]
    out["build_s"] = time.perf_counter() - t0
    out["n_samples"] = len(samples)
    out["n_subjects"] = int(samples.frame["subject_id"].n_unique())
    out["label_balance"] = samples.cohort["label_balance"]
    if phase == "arrays":
        t2 = time.perf_counter()
        subjects = np.unique(samples.subject_ids)
        vocab = CodeVocab.fit(samples.by_subjects(subjects[::2]))
        arrays = vocab.transform(samples)
        out["arrays_s"] = time.perf_counter() - t2
        out["x_shape"] = list(arrays.inputs["x"].shape)
        out["vocab_size"] = vocab.vocab_size
        out["x_mb"] = arrays.inputs["x"].nbytes / 1e6
    out["polars_threads"] = pl.thread_pool_size()
    out["process_cpu_s"] = time.process_time()  # all threads, imports included
    return out


def measure(argv: list[str]) -> tuple[dict, float, float]:
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"phase failed ({proc.returncode}): {' '.join(argv)}")
    return json.loads(stdout.strip().splitlines()[-1]), wall, peak / 2**30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, required=True)
    ap.add_argument("--task", default="mortality_next_visit")
    ap.add_argument("--phases", nargs="+", default=["nocache", "cold", "warm", "arrays"])
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.data, args.cache_dir, args.task)))
        return 0
    if "cold" in args.phases and args.cache_dir.exists():
        shutil.rmtree(args.cache_dir)
    rows = []
    for phase in args.phases:
        cmd = [
            sys.executable,
            __file__,
            "--data",
            str(args.data),
            "--cache-dir",
            str(args.cache_dir),
            "--task",
            args.task,
            "--phase",
            phase,
        ]
        res, wall, peak = measure(cmd)
        rows.append((phase, res, wall, peak))
        print(
            json.dumps(
                {"phase": phase, "wall_s": round(wall, 2), "peak_gib": round(peak, 3), **res}
            ),
            flush=True,
        )
    print()
    print(
        "| phase | process wall (s) | process CPU (s) | build call (s) | peak RSS, all processes (GiB) | samples |"
    )
    print("|---|---|---|---|---|---|")
    for phase, res, wall, peak in rows:
        extra = f" (+ fit/transform {res['arrays_s']:.2f} s)" if "arrays_s" in res else ""
        print(
            f"| {phase} | {wall:.2f} | {res['process_cpu_s']:.2f} | {res['build_s']:.2f}{extra} | {peak:.2f} "
            f"| {res['n_samples']:,} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""medtorch and PyHealth 1.1.6 side by side: the mortality samples from the same
MIMIC-III-shaped tables, each a whole process, timed and its peak memory (with its
children) sampled as bench_ehr_build.py does.

Per repeat, in this order: medtorch ``nocache`` (read_mimic3 + build_samples), medtorch
``cold`` (load_samples into an empty cache: the first run, which writes its cache), and
PyHealth (``MIMIC3Dataset(..., refresh_cache=True)`` + ``set_task``, its first run, which
writes its pickle cache; bench_pyhealth.py, in PyHealth's own virtual environment). The
table gives the median over the repeats and the ratios PyHealth / medtorch ``cold``.

    python benchmarks/ehr/make_mimic3_copies.py --patients 2000 --out $TMPDIR/mimic3_2k
    OMP_NUM_THREADS=1 POLARS_MAX_THREADS=1 PYTHONPATH=src taskset -c 1 \\
        python benchmarks/ehr/bench_vs_pyhealth.py --data $TMPDIR/mimic3_2k \\
        --pyhealth-python $VENV/bin/python --scratch $TMPDIR/ehr_vs --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(argv: list[str]) -> tuple[dict, float, float]:
    """Run one whole process: (its last JSON line, wall seconds, peak GiB summed over the
    process and its children, sampled every 20 ms) - the sampling bench_ehr_build.py uses
    (scripts do not import each other)."""
    import subprocess
    import time

    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    tree, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(
                peak, sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)])
            )
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"phase failed ({proc.returncode}): {' '.join(argv)}")
    return json.loads(out.strip().splitlines()[-1]), wall, peak / 2**30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pyhealth-python", type=Path, required=True)
    ap.add_argument("--scratch", type=Path, required=True, help="caches and PyHealth's HOME")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write every run here")
    args = ap.parse_args(argv)
    if not args.pyhealth_python.is_file():
        print(f"error: expected PyHealth's python, got no file {args.pyhealth_python} in "
              "--pyhealth-python; make its venv (see bench_pyhealth.py)", file=sys.stderr)  # fmt: skip
        return 2
    home = args.scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)  # PyHealth's cache (~/.cache/pyhealth) goes here
    runs: list[dict] = []
    for r in range(args.repeats):
        for tool, phase in (("medtorch", "nocache"), ("medtorch", "cold"), ("pyhealth", "")):
            if tool == "medtorch":
                cache = args.scratch / "medtorch_cache"
                shutil.rmtree(cache, ignore_errors=True)
                cmd = [sys.executable, str(HERE / "bench_ehr_build.py"), "--data", str(args.data),
                       "--cache-dir", str(cache), "--phase", phase]  # fmt: skip
            else:
                shutil.rmtree(home / ".cache", ignore_errors=True)
                cmd = [str(args.pyhealth_python), str(HERE / "bench_pyhealth.py"),
                       "--data", str(args.data)]  # fmt: skip
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            res, wall, peak = measure(cmd)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU of the whole process tree (PyHealth's pandarallel workers included)
            tree = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            row = {"repeat": r, "tool": tool, "phase": phase or "first run", "wall_s": wall,
                   "peak_gib": peak, "tree_cpu_s": tree, **res}  # fmt: skip
            runs.append(row)
            print(json.dumps(row, default=str), flush=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str))

    def med(tool: str, phase: str, key: str) -> float:
        return statistics.median(x[key] for x in runs if x["tool"] == tool and x["phase"] == phase)

    print()
    print("| tool | phase | process wall (s), median (each run) | CPU, all processes (s) | peak RSS, all processes (GiB) | samples |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for tool, phase in (("medtorch", "nocache"), ("medtorch", "cold"), ("pyhealth", "first run")):
        walls = ", ".join(f"{x['wall_s']:.2f}" for x in runs
                          if x["tool"] == tool and x["phase"] == phase)  # fmt: skip
        n = next(x["n_samples"] for x in runs if x["tool"] == tool and x["phase"] == phase)
        print(f"| {tool} | {phase} | {med(tool, phase, 'wall_s'):.2f} ({walls}) | "
              f"{med(tool, phase, 'tree_cpu_s'):.2f} | {med(tool, phase, 'peak_gib'):.3f} | {n:,} |")  # fmt: skip
    t = med("pyhealth", "first run", "wall_s") / med("medtorch", "cold", "wall_s")
    m = med("pyhealth", "first run", "peak_gib") / med("medtorch", "cold", "peak_gib")
    c = med("pyhealth", "first run", "tree_cpu_s") / med("medtorch", "cold", "tree_cpu_s")
    print(
        f"\nPyHealth / medtorch cold: {t:.1f}x the wall time, {c:.1f}x the CPU time, "
        f"{m:.1f}x the peak memory"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

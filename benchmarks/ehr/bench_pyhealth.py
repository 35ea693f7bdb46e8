"""PyHealth 1.1.6's side of the EHR build benchmark: load MIMIC-III-shaped tables and build
its mortality samples, as its own example does.

Runs in PyHealth's own virtual environment, never in medtorch's (it pins numpy < 2):

    python3 -m venv $VENV && $VENV/bin/pip install pyhealth==1.1.6 'numpy<2' 'setuptools<81'
    $VENV/bin/python benchmarks/ehr/bench_pyhealth.py --data $TMPDIR/mimic3_10k

``MIMIC3Dataset(root, tables=[DIAGNOSES_ICD, PROCEDURES_ICD, PRESCRIPTIONS],
refresh_cache=True)`` parses the tables from scratch (and writes PyHealth's pickle cache, as
its first run does), then ``set_task(mortality_prediction_mimic3_fn)``. Prints one JSON line:
the load and task times, the patients, visits and samples. PyHealth reads plain
``PATIENTS.csv`` etc. (what make_mimic3_copies.py writes). Its cache goes under ``$HOME``;
bench_vs_pyhealth.py points ``HOME`` at a scratch folder.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

TABLES = ["DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cached", action="store_true", help="load PyHealth's cache if it has one")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    warnings.filterwarnings("ignore")
    import pyhealth
    from pyhealth.datasets import MIMIC3Dataset
    from pyhealth.tasks import mortality_prediction_mimic3_fn

    t1 = time.perf_counter()
    ds = MIMIC3Dataset(root=str(args.data), tables=TABLES, refresh_cache=not args.cached)
    t2 = time.perf_counter()
    samples = ds.set_task(mortality_prediction_mimic3_fn)
    t3 = time.perf_counter()
    labels = [int(s["label"]) for s in samples.samples]
    print(json.dumps({
        "pyhealth": pyhealth.__version__ if hasattr(pyhealth, "__version__") else "1.1.6",
        "import_s": t1 - t0, "load_s": t2 - t1, "task_s": t3 - t2, "build_s": t3 - t1,
        "n_patients": len(ds.patients), "n_visits": sum(len(p) for p in ds.patients.values()),
        "n_samples": len(labels), "n_positive": sum(labels),
        "process_cpu_s": time.process_time(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

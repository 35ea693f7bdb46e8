"""Speed of two hot spots outside training: reading the bundled UCI file, and the
vectorised cluster bootstrap (1,000 resamples over 10,000 samples in 500 groups) against a
per-resample scikit-learn loop (the baseline, run on 50 resamples and scaled).

    .venv/bin/python benchmarks/speed/data_bootstrap.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from medtorch.data.sources.uci_seizure import read_uci_seizure
from medtorch.metrics import evaluate

OUT = Path(__file__).resolve().parents[1] / "results" / "data_speed.json"


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    n = 10_000
    y = rng.integers(0, 2, n)
    p1 = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
    proba = np.stack([1 - p1, p1], 1)
    groups = np.arange(n) // 20

    def naive(b: int = 50) -> None:
        uniq = np.unique(groups)
        r = np.random.default_rng(1)
        for _ in range(b):
            pick = r.choice(uniq, len(uniq))
            idx = np.concatenate([np.flatnonzero(groups == g) for g in pick])
            roc_auc_score(y[idx], p1[idx])
            accuracy_score(y[idx], proba[idx].argmax(1))

    res = {
        "uci_read_s": timed(read_uci_seizure, a.repeats),
        "bootstrap_1000_s": timed(lambda: evaluate(y, proba, ["n", "p"], groups=groups), a.repeats),
        "naive_loop_1000_s_est": timed(naive, max(1, a.repeats // 2)) * 1000 / 50,
    }
    res["bootstrap_speedup"] = res["naive_loop_1000_s_est"] / res["bootstrap_1000_s"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""medtorch's GRU with the lab's hyper-parameters (batch 10, Adam 1e-3) over the full 15 epochs.

.venv/bin/python benchmarks/gru15_medtorch.py   # ~10 min on 2 cores
"""

import json
import sys
import time

sys.path.insert(0, "benchmarks")
import bench_lab_seizure as b
from medtorch.config import SplitConfig
from medtorch.data.splits import make_split
from medtorch.data.tasks.registry import build_task

ds = build_task("seizure_5class", None, {})
split = make_split(ds, SplitConfig(method="random", seed=6250))
t = time.time()
r = b.medtorch_same("gru", ds, split, 15, None)
out = {k: v for k, v in r.items() if k != "epochs"}
out["wall_s"] = time.time() - t
out["samples_per_s_median"] = sorted(e["train_samples_per_s"] for e in r["epochs"])[
    len(r["epochs"]) // 2
]
print(json.dumps(out, default=str))
json.dump(out, open("benchmarks/results/gru_15_epochs_medtorch.json", "w"), indent=1, default=str)

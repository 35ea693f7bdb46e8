"""EHR training throughput: patients/s and samples/s of the visit GRU and the visit
Transformer through medtorch's Trainer on MIMIC-III-shaped copies of the demo, beside the
bag-of-codes logistic regression (the baseline of every EHR table) in the same script.

    python benchmarks/ehr/make_mimic3_copies.py --patients 100000 --out $TMPDIR/mimic3_100k
    python benchmarks/ehr/bench_ehr_train.py --data $TMPDIR/mimic3_100k --repeats 3 \
        --threads 2 --json benchmarks/results/ehr_train_100k.json

The samples are built once, exactly as ``medtorch train <recipe>`` builds them
(``pipeline.prepare``: the recipe's task, its by-patient split, its code vocabulary
fitted on the training patients), with ``task.params.path`` pointing at the copies. Each
model then trains one epoch over the training partition with its recipe's optimizer and
batch size, ``--repeats`` times (a new model each time); the epoch's training steps are
timed as the run's ``history.csv`` reports them (``train_samples_per_s``), and the median is
given. patients/s = training patients / epoch time (each patient contributes one sample per
admission that has a next one, so patients/s < samples/s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.config import load_config
from medtorch.models.shapes import build_model, shape_hints
from medtorch.pipeline import objective, prepare
from medtorch.train import Trainer

RECIPES = ("mimic3_mortality_logreg", "mimic3_mortality_gru", "mimic3_mortality_transformer")
TABLES = "[DIAGNOSES_ICD,PROCEDURES_ICD,PRESCRIPTIONS]"


def _overrides(data: Path, cache: Path | None) -> list[str]:
    out = [f"task.params.path={data}", "task.params.format=mimic3", f"task.params.tables={TABLES}",
           "trainer.max_epochs=1", "trainer.progress=false"]  # fmt: skip
    if cache is not None:
        out.append(f"task.params.cache_dir={cache}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="MIMIC-III-shaped folder")
    p.add_argument("--cache-dir", type=Path, help="the EHR cache (default: medtorch's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows: list[dict[str, Any]] = []
    prepared: dict[str, Any] = {}
    for recipe in a.recipes:
        cfg = load_config(recipe, _overrides(a.data, a.cache_dir))
        key = json.dumps([cfg.task.model_dump(), cfg.split.model_dump()], sort_keys=True)
        if key not in prepared:
            t0 = time.perf_counter()
            prepared[key] = (prepare(cfg, None), time.perf_counter() - t0)
        prep, prepare_s = prepared[key]
        train = prep.parts["train"]
        n_patients = int(np.unique(train.groups).size)
        hints = shape_hints(train, prep.kinds, prep.encoder)
        trainer_cfg = cfg.trainer.model_copy(update={"num_threads": a.threads})
        rates = []
        for r in range(a.repeats):
            torch.manual_seed(r)
            model = build_model(cfg.model.name, cfg.model.params, hints, train.n_classes)
            tr = Trainer(model, cfg.optim, trainer_cfg, None, train.class_names,
                         input_kinds=prep.kinds, objective=objective(train))  # fmt: skip
            history = tr.fit(train, None)
            rates.append(float(history[0]["train_samples_per_s"]))
        samples_per_s = statistics.median(rates)
        row = {
            "recipe": recipe,
            "model": cfg.model.name,
            "threads": a.threads,
            "batch_size": cfg.trainer.batch_size,
            "train_samples": len(train),
            "train_patients": n_patients,
            "x_shape": list(train.inputs["x"].shape),
            "prepare_s": prepare_s,
            "samples_per_s": samples_per_s,
            "patients_per_s": samples_per_s * n_patients / len(train),
            "epoch_s": len(train) / samples_per_s,
            "repeats_samples_per_s": rates,
        }
        rows.append(row)
        print(f"{recipe} ({cfg.model.name}): {samples_per_s:,.0f} samples/s, "
              f"{row['patients_per_s']:,.0f} patients/s, {row['epoch_s']:.1f} s per epoch of "
              f"{len(train):,} samples ({n_patients:,} patients), {a.threads} threads")  # fmt: skip
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["time_ratio_vs_first"] = base / row["samples_per_s"]
    print("epoch time relative to " + rows[0]["recipe"] + ": "
          + ", ".join(f"{r['model']} {r['time_ratio_vs_first']:.1f}x" for r in rows))  # fmt: skip
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

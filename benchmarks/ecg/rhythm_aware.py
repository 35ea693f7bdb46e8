"""Beat labels with and without the AF detector's rhythm context, DS2 records, AAMI metrics.

    MEDTORCH_DATA=../shared/data .venv/bin/python benchmarks/ecg/rhythm_aware.py \\
        --beat-runs runs/resnet_s0-* runs/resnet_s1-* --af-run runs/af_mlp_ds1-* --json out.json

For every DS2 record this runs exactly what ``medtorch predict BEAT_RUN RECORD --af-run
AF_RUN`` runs (beats from the reference annotations), then scores the beat model's own
labels (``predicted``) and the rhythm-aware ones (``predicted_rhythm_aware``: an S call
inside a detected AF episode is read as N) with :func:`medtorch.metrics.aami_report`,
CIs resampled by record. The AF run must be trained without DS2 records (e.g. the
``mitdb_ds1_ds2`` protocol), or the result leaks; the script refuses otherwise. As a check
of the wiring, the plain labels must reproduce the beat run's own test kappa.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.paths import resolve_data_dir
from medtorch.data.preprocess import Normalizer
from medtorch.ecg.beats import AAMI_CLASSES
from medtorch.ecg.evaluation import aami_rows
from medtorch.ecg.predict import AF_DEFAULTS, BEAT_DEFAULTS, predict_record
from medtorch.ecg.records import DS2, mitdb_dir
from medtorch.metrics.aami import aami_report
from medtorch.pipeline import load_normalizer, restore_model


def _load(run: Path) -> tuple[Any, Any, Normalizer]:
    cfg, _, model = restore_model(run)
    return cfg, model, load_normalizer(run)


def _summary(report: dict[str, Any]) -> dict[str, float]:
    return aami_rows(report, ("S", "V"), ("Se", "+P"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beat-runs", nargs="+", type=Path, required=True)
    ap.add_argument("--af-run", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    root = mitdb_dir(resolve_data_dir(str(a.data_dir) if a.data_dir else None))
    af_cfg, af_model, af_norm = _load(a.af_run)
    splits = json.loads((a.af_run / "splits.json").read_text())
    trained_on = {sid.split(":")[0] for part in ("train", "valid")
                  for sid in splits["partitions"][part]["sample_ids"]}  # fmt: skip
    if trained_on & set(DS2):
        raise SystemExit(f"error: AF run {a.af_run} was trained on DS2 records "
                         f"{sorted(trained_on & set(DS2))}; train it on DS1 only")  # fmt: skip
    af_params = {k: v for k, v in dict(af_cfg.task.params).items() if k in AF_DEFAULTS}
    results: dict[str, Any] = {"af_run": a.af_run.name, "records": list(DS2), "runs": {}}
    for run in a.beat_runs:
        cfg, model, norm = _load(run)
        params = {k: v for k, v in dict(cfg.task.params).items() if k in BEAT_DEFAULTS}
        ref, plain, aware, rec = [], [], [], []
        for r in DS2:
            rows, _ = predict_record(model, norm.transform, root / r, params, af_model,
                                     af_norm.transform, af_params)  # fmt: skip
            rows = [row for row in rows if row["ref_class"]]
            ref += [AAMI_CLASSES.index(row["ref_class"]) for row in rows]
            plain += [AAMI_CLASSES.index(row["predicted"]) for row in rows]
            aware += [AAMI_CLASSES.index(row["predicted_rhythm_aware"]) for row in rows]
            rec += [r] * len(rows)
        y, g = np.array(ref), np.array(rec)
        reps = {name: aami_report(y, np.array(p), groups=g, n_bootstrap=a.n_bootstrap)
                for name, p in (("plain", plain), ("rhythm_aware", aware))}  # fmt: skip
        own = json.loads((run / "metrics.json").read_text())["test"]["aami"]
        own_kappa = float(own["overall"]["cohen_kappa"]["value"])
        plain_kappa = float(reps["plain"]["overall"]["cohen_kappa"]["value"])
        if abs(own_kappa - plain_kappa) > 1e-6 or len(y) != own["n"]:
            raise SystemExit(f"error: predict's labels do not reproduce {run.name}'s test "
                             f"metrics (kappa {plain_kappa} vs {own_kappa}, n {len(y)} vs "
                             f"{own['n']})")  # fmt: skip
        results["runs"][run.name] = {k: _summary(v) for k, v in reps.items()} | {
            "n_beats": len(y),
            "reports": reps,
        }
        print(run.name, json.dumps({k: _summary(v) for k, v in reps.items()}))
    for name in ("plain", "rhythm_aware"):
        vals = [v[name] for v in results["runs"].values()]
        keys = vals[0].keys()
        results[f"mean_sd_{name}"] = {k: [float(np.mean([v[k] for v in vals])),
                                          float(np.std([v[k] for v in vals], ddof=1))
                                          if len(vals) > 1 else 0.0] for k in keys}  # fmt: skip
        print(name, {k: f"{m:.3f} ± {s:.3f}" if k == "kappa" else f"{m:.1f} ± {s:.1f}"
                     for k, (m, s) in results[f"mean_sd_{name}"].items()})  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

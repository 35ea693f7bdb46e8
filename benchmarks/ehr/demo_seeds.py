"""Every EHR recipe on the MIMIC-III and MIMIC-IV demos over training seeds: test metrics
with their 95% CIs (resampled by patient), as a JSON file and a markdown table.

    MEDTORCH_DATA=... python benchmarks/ehr/demo_seeds.py --seeds 0 1 2 \
        --json benchmarks/results/ehr_demo_seeds.json
    MEDTORCH_DATA=... python benchmarks/ehr/demo_seeds.py --grid --seeds 0 1 2 \
        --json benchmarks/results/ehr_demo_grid.json
    python benchmarks/ehr/demo_seeds.py --grid --table benchmarks/results/ehr_demo_grid.json

``--grid`` trains every EHR model on every task of both demos (the baselines beside every
deep model): each (demo, task) starts from the MIMIC-III recipe of that task (its split,
epochs and task settings), with the demo swapped in (``data.dataset``,
``task.params.source``), the model swapped (``model.params`` empty: the model's defaults)
and the learning rate of the model's family as its recipes set it (``GRID_LR``). Visit
tasks get the visit models, the 48 h tasks the event models; both get the bags of codes.

The split is the recipe's (by patient, seed 6250); the seed changes the initial weights
and the batch order only. The demos hold 100 patients each, so the test partitions are a
handful of patients: read every figure with its n and its CI.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medtorch.config import load_config
from medtorch.pipeline import train_run
from medtorch.recipes import list_recipes

# the task's base recipe, and the models that read its representation
GRID_TASKS = {
    "mortality_next_visit": ("mimic3_mortality_gru", "visits"),
    "readmission_30d": ("mimic3_readmission_gru", "visits"),
    "next_visit_diagnosis": ("mimic3_nextdx_gru", "visits"),
    "in_hospital_mortality_48h": ("mimic3_ihm48_gru", "events"),
    "long_stay_7d": ("mimic3_longstay_gru", "events"),
}
GRID_MODELS = {
    "visits": ("bag_logreg", "bag_mlp", "visit_gru", "visit_lstm", "retain",
               "visit_transformer", "deepr"),
    "events": ("bag_logreg", "bag_mlp", "event_gru", "event_transformer"),
}  # fmt: skip
GRID_LR = {"bag_logreg": 0.03, "visit_transformer": 0.001, "event_transformer": 0.001}
GRID_DEMOS = ("mimic3_demo", "mimic4_demo")


def grid() -> list[tuple[str, str, list[str]]]:
    """(label, base recipe, overrides) of every (demo, task, model) of the grid."""
    out = []
    for demo in GRID_DEMOS:
        for task, (recipe, rep) in GRID_TASKS.items():
            for model in GRID_MODELS[rep]:
                sets = [f"data.dataset={demo}", f"task.params.source={demo}",
                        f"model.name={model}", "model.params={}",
                        f"optim.lr={GRID_LR.get(model, 0.003)}"]  # fmt: skip
                out.append((f"{demo}/{task}/{model}", recipe, sets))
    return out


KEYS = ("auroc", "auprc", "recall@10", "recall@20", "micro_auprc", "macro_auprc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipes", nargs="*", default=None, help="default: every mimic*_ recipe")
    ap.add_argument("--grid", action="store_true", help="every model on every task of both demos")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="skip the runs already in --json")
    ap.add_argument("--table", type=Path, nargs="+", default=None,
                    help="print the markdown table (mean +- sd over seeds) of these JSON files")  # fmt: skip
    args = ap.parse_args()
    if args.table:
        rows = [r for f in args.table for r in json.loads(f.read_text())["runs"]]
        print(matrix(rows) if args.grid else table(rows))
        return
    recipes = args.recipes or [r for r in list_recipes() if r.startswith(("mimic3_", "mimic4_"))]
    jobs = grid() if args.grid else [(r, r, []) for r in recipes]
    rows = []
    if args.json and args.json.is_file() and args.resume:  # keep the runs already written
        rows = json.loads(args.json.read_text())["runs"]
    done = {(r["recipe"], r["seed"]) for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe, base, sets in jobs:
            for seed in args.seeds:
                if (recipe, seed) in done:
                    continue
                cfg = load_config(base, [*sets, f"trainer.seed={seed}", "trainer.progress=false"])
                t0 = time.perf_counter()
                run = train_run(cfg, Path(tmp) / recipe.replace("/", "_"))
                m = json.loads((run / "metrics.json").read_text())
                test = m["test"]
                row = {"recipe": recipe, "task": cfg.task.name, "model": cfg.model.name,
                       "seed": seed, "n_test": test["n"], "groups_test": test["n_groups"],
                       "best_epoch": m["best_epoch"], "wall_s": round(time.perf_counter() - t0, 1),
                       "metrics": {k: test["overall"][k] for k in KEYS if k in test["overall"]}}  # fmt: skip
                rows.append(row)
                shown = ", ".join(f"{k} {v['value']:.3f}" for k, v in row["metrics"].items()
                                  if v.get("value") is not None)  # fmt: skip
                print(f"{recipe} seed {seed}: n={row['n_test']} {shown}", flush=True)
                if args.json:  # after every run, so a long grid keeps what it has done
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps({"seeds": args.seeds, "runs": rows},
                                                    indent=1) + "\n")  # fmt: skip


def matrix(rows: list[dict]) -> str:
    """The grid as one line per (demo, task) and one column per model: the task's first
    metric (AUROC, or recall@10 for next-visit diagnosis), mean +- sd over seeds; the test
    n (patients) beside the task."""
    import numpy as np

    models = [m for rep in GRID_MODELS.values() for m in rep]
    models = list(dict.fromkeys(models))
    out = ["| demo | task (test n, patients) | metric | " + " | ".join(f"`{m}`" for m in models)
           + " |", "|---|---|---|" + "---:|" * len(models)]  # fmt: skip
    for demo in GRID_DEMOS:
        for task in GRID_TASKS:
            rs = [r for r in rows if r["recipe"].startswith(f"{demo}/{task}/")]
            if not rs:
                continue
            key = next(iter(rs[0]["metrics"]))
            cells = []
            for m in models:
                vals = [r["metrics"][key]["value"] for r in rs if r["model"] == m
                        and r["metrics"][key]["value"] is not None]  # fmt: skip
                cells.append(f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if vals else "")
            out.append(f"| {demo} | {task} ({rs[0]['n_test']}, {rs[0]['groups_test']}) | {key} | "
                       + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(out)


def table(rows: list[dict]) -> str:
    """One line per recipe: test n (patients), then each metric's mean +- sd over seeds,
    and seed 0's 95% CI."""
    import numpy as np

    out = ["| recipe | task | model | test n (patients) | seeds | metric: mean ± sd (seed 0's 95% CI) |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for recipe in sorted({r["recipe"] for r in rows}):
        rs = sorted((r for r in rows if r["recipe"] == recipe), key=lambda r: r["seed"])
        cells = []
        for k in rs[0]["metrics"]:
            vals = [r["metrics"][k]["value"] for r in rs if r["metrics"][k]["value"] is not None]
            ci = rs[0]["metrics"][k].get("ci")
            ci_s = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            if vals:
                cells.append(f"{k} {np.mean(vals):.3f} ± {np.std(vals):.3f}{ci_s}")
        out.append(f"| `{recipe}` | {rs[0]['task']} | {rs[0]['model']} | {rs[0]['n_test']} "
                   f"({rs[0]['groups_test']}) | {len(rs)} | {'; '.join(cells)} |")  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    main()

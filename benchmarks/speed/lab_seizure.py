"""The CSE6250 lab's own training loop vs medtorch on UCI seizure (5 classes), in one process.

For each model (``cnn`` = ``lab_cnn``, ``gru`` = ``gru``) on the lab's random split
(seed 6250, 64/16/20 of rows, from ``medtorch.data.splits.make_split``):

(a) **lab loop**: a re-implementation of the loop of ``2_CNN.ipynb`` / ``3_RNN.ipynb``
    (ast0414/CSE6250BDH-LAB-DL): ``TensorDataset`` + ``DataLoader(batch_size=10,
    shuffle=True, num_workers=2)`` (valid/test: ``shuffle=False, num_workers=2``), Adam with
    default settings, ``nn.CrossEntropyLoss``, per-batch ``loss.item() * batch`` accounting,
    a valid-loss pass every epoch, final test accuracy from the last epoch's weights with the
    lab's per-sample ``.item()`` class counting. Raw (un-normalised) signals, as in the lab.
(b) **medtorch, same hyper-parameters**: ``medtorch.train.trainer.Trainer`` with the same
    model (same initial weights: both built right after ``torch.manual_seed(6250)``), Adam
    lr 1e-3, batch 10, the same number of epochs, no normalisation; test accuracy from the last
    epoch's weights (as the lab) and from the best-valid-accuracy epoch.
(c) **medtorch recipe**: ``recipes/lab2_seizure_cnn.yaml`` / ``recipes/lab3_seizure_gru.yaml``
    through ``medtorch.pipeline.train_run`` (bundled data, progress off, tmp out dir): full
    wall time, final test accuracy (best checkpoint, as the pipeline reports it) and the
    cumulative epoch time at which valid accuracy first reached the lab's test accuracy.

Speed = training samples/s of the training phase of an epoch (n_train / time of the
optimisation steps, valid pass excluded), median over the epochs of a run, then median over
``--repeats`` runs; the medtorch/lab ratio is computed per repeat pair (lab run i, medtorch
run i, run back to back) and its median reported. The GRU's 15 lab epochs cost minutes each
on 2 cores, so only the first repeat of the GRU runs the full 15 epochs (accuracy run, both
loops); the other repeats run ``--gru-epochs`` epochs and only measure speed.

``--medtorch-only`` runs (b) alone, once, over the full epochs (the lab's 15 for the GRU) and
writes its test accuracies, wall time and median samples/s.

    .venv/bin/python benchmarks/speed/lab_seizure.py                 # everything (see README)
    .venv/bin/python benchmarks/speed/lab_seizure.py --quick         # smoke check, ~2 min
    .venv/bin/python benchmarks/speed/lab_seizure.py --only cnn --repeats 5
    .venv/bin/python benchmarks/speed/lab_seizure.py --only gru --medtorch-only \
        --out benchmarks/results/gru_15_epochs_medtorch.json          # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[2]
SEED = 6250
CLASSES = ("Seizure", "TumorArea", "HealthyArea", "EyesClosed", "EyesOpen")

# the lab's settings per model: registry name, model params, epochs, recipe
SPECS: dict[str, dict[str, Any]] = {
    "cnn": {
        "model": "lab_cnn",
        "params": {"n_times": 178},
        "epochs": 10,
        "recipe": "recipes/lab2_seizure_cnn.yaml",
    },
    "gru": {
        "model": "gru",
        "params": {"hidden_size": 32, "num_layers": 2, "dropout": 0.5},
        "epochs": 15,
        "recipe": "recipes/lab3_seizure_gru.yaml",
    },
}
LAB_BATCH = 10
LAB_WORKERS = 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return float(statistics.median(xs)) if xs else math.nan


# -- data -------------------------------------------------------------------------------------
def load_data() -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """The seizure_5class task and the lab's random split (medtorch's make_split)."""
    from medtorch.config import SplitConfig
    from medtorch.data.splits import make_split

    info: dict[str, Any] = {}
    try:
        from medtorch.data import tasks as _tasks  # noqa: F401  (registers the tasks)
        from medtorch.data.tasks.registry import build_task

        ds = build_task("seizure_5class", None, {})
        info["source"] = "medtorch.data.tasks.registry.build_task('seizure_5class', None, {})"
    except Exception as exc:  # the task may not be registered yet in a partial checkout
        from medtorch.data.dataset import ArrayDataset
        from medtorch.data.sources.uci_seizure import read_uci_seizure

        X, y, ids, rec, _ = read_uci_seizure()
        ds = ArrayDataset({"x": X[:, None, :]}, y - 1, rec, list(CLASSES), sample_ids=ids)
        info["source"] = f"read_uci_seizure() fallback ({type(exc).__name__}: {exc})"
    split = make_split(ds, SplitConfig(method="random", ratios=(0.64, 0.16, 0.20), seed=SEED))
    # the lab: train_test_split(test_size=0.2, random_state=6250) twice, on the rows in file order
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(ds))
    rest, test = train_test_split(rows, test_size=0.2, random_state=SEED)
    train, valid = train_test_split(rest, test_size=0.2, random_state=SEED)
    info["split_sizes"] = {k: len(v) for k, v in split.items()}
    info["split_matches_lab_train_test_split"] = all(
        np.array_equal(np.sort(a), split[k])
        for k, a in (("train", train), ("valid", valid), ("test", test))
    )
    info["x_shape"] = list(ds.inputs["x"].shape)
    return ds, split, info


# -- (a) the lab's loop ------------------------------------------------------------------------
class _Meter:
    """Running average (the course's AverageMeter: val, sum, count, avg)."""

    def __init__(self) -> None:
        self.sum, self.count = 0.0, 0

    def update(self, val: float, n: int = 1) -> None:
        self.sum += val * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / max(self.count, 1)


def lab_loop(
    name: str, ds: Any, split: dict[str, np.ndarray], epochs: int, acc_meter: bool
) -> dict[str, Any]:
    """The notebook's training procedure, with its DataLoader settings; timed per epoch."""
    from medtorch.models import create_model

    spec = SPECS[name]
    torch.use_deterministic_algorithms(False)  # the lab never turns it on; Trainer may have
    x, y = ds.inputs["x"], ds.y

    def tensors(idx: np.ndarray) -> TensorDataset:
        # the lab: torch.from_numpy(X.astype('float32')).unsqueeze(1), y.astype('long');
        # (N, 1, 178) for both nets: medtorch's gru takes (N, C, T) and transposes itself
        return TensorDataset(
            torch.from_numpy(x[idx].astype("float32")), torch.from_numpy(y[idx].astype("int64"))
        )

    torch.manual_seed(SEED)
    trainset, validset, testset = (tensors(split[k]) for k in ("train", "valid", "test"))
    trainloader = DataLoader(trainset, batch_size=LAB_BATCH, shuffle=True, num_workers=LAB_WORKERS)
    validloader = DataLoader(validset, batch_size=LAB_BATCH, shuffle=False, num_workers=LAB_WORKERS)
    testloader = DataLoader(testset, batch_size=LAB_BATCH, shuffle=False, num_workers=LAB_WORKERS)
    params = dict(spec["params"])
    if spec["model"] == "gru":  # the lab trains nn.GRU through its own kernel
        params["fast_cpu_training"] = False
    model = create_model(spec["model"], n_inputs=1, n_classes=5, **params)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters())

    rows = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        train_loss, train_counter = 0.0, 0
        train_acc = _Meter()
        for inputs, targets in trainloader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * inputs.size(0)
            train_counter += inputs.size(0)
            if acc_meter:  # per-batch accuracy, as the course's homework train() does
                pred = outputs.max(1)[1]
                train_acc.update(pred.eq(targets).sum().item() / targets.size(0), targets.size(0))
        t_train = time.perf_counter() - t0
        model.eval()
        valid_loss, valid_counter = 0.0, 0
        valid_acc = _Meter()
        with torch.no_grad():
            for inputs, targets in validloader:
                outputs = model(inputs)
                loss = criterion(outputs, targets)
                valid_loss += loss.item() * inputs.size(0)
                valid_counter += inputs.size(0)
                if acc_meter:
                    pred = outputs.max(1)[1]
                    valid_acc.update(
                        pred.eq(targets).sum().item() / targets.size(0), targets.size(0)
                    )
        t_epoch = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "train_loss": train_loss / train_counter,
            "valid_loss": valid_loss / valid_counter,
            "train_time_s": t_train,
            "epoch_time_s": t_epoch,
            "train_samples_per_s": train_counter / t_train,
        }
        if acc_meter:
            row.update(train_accuracy=train_acc.avg, valid_accuracy=valid_acc.avg)
        rows.append(row)
        log(
            f"  lab {name} epoch {epoch}/{epochs} loss {row['train_loss']:.4f} "
            f"valid_loss {row['valid_loss']:.4f} {t_epoch:.1f}s "
            f"({row['train_samples_per_s']:.0f} samples/s)"
        )

    # test: the lab's per-class counting with one .item() per sample, on the last weights
    t0 = time.perf_counter()
    class_correct = [0.0] * len(CLASSES)
    class_total = [0.0] * len(CLASSES)
    model.eval()
    with torch.no_grad():
        for inputs, targets in testloader:
            outputs = model(inputs)
            _, predicted = torch.max(outputs.data, 1)
            c = (predicted == targets).squeeze()
            for i, label in enumerate(targets):
                class_correct[label] += c[i].item()
                class_total[label] += 1
    test_time = time.perf_counter() - t0
    return {
        "epochs": rows,
        "test_accuracy": sum(class_correct) / sum(class_total),
        "test_class_accuracy": {
            c: k / t for c, k, t in zip(CLASSES, class_correct, class_total, strict=True)
        },
        "test_time_s": test_time,
        "wall_s": sum(r["epoch_time_s"] for r in rows) + test_time,
    }


# -- (b) medtorch Trainer with the lab's hyper-parameters ---------------------------------------
def medtorch_same(
    name: str, ds: Any, split: dict[str, np.ndarray], epochs: int, threads: int | None
) -> dict[str, Any]:
    from medtorch.config import OptimConfig, TrainerConfig
    from medtorch.models import create_model
    from medtorch.train.trainer import Trainer

    spec = SPECS[name]
    parts = {k: ds.subset(v) for k, v in split.items()}
    torch.manual_seed(SEED)  # the same initial weights as the lab loop's model
    model = create_model(spec["model"], n_inputs=1, n_classes=5, **spec["params"])
    optim = OptimConfig(name="adam", lr=1e-3)
    tcfg = TrainerConfig(
        max_epochs=epochs,
        batch_size=LAB_BATCH,
        seed=SEED,
        monitor="valid_accuracy",
        progress=False,
        device="cpu",
        num_threads=threads if threads is not None else "auto",
    )
    trainer = Trainer(model, optim, tcfg, None, list(ds.class_names))
    t0 = time.perf_counter()
    history = trainer.fit(parts["train"], parts["valid"])
    fit_s = time.perf_counter() - t0
    test = parts["test"]
    acc_last = float((trainer.predict_proba(test).argmax(1) == test.y).mean())
    acc_best = float((trainer.predict_proba(test, checkpoint="best").argmax(1) == test.y).mean())
    rows = [
        {k: (v if isinstance(v, (int, str)) else float(v)) for k, v in r.items()} for r in history
    ]
    for r in rows:
        log(
            f"  medtorch {name} epoch {r['epoch']}/{epochs} loss {r['train_loss']:.4f} "
            f"valid_acc {r['valid_accuracy']:.4f} {r['epoch_time_s']:.1f}s "
            f"({r['train_samples_per_s']:.0f} samples/s)"
        )
    return {
        "epochs": rows,
        "test_accuracy": acc_last,
        "test_accuracy_best_valid_epoch": acc_best,
        "best_epoch": trainer.best_epoch,
        "fit_wall_s": fit_s,
        "trainer_config": tcfg.model_dump(mode="json"),
    }


# -- floor: a bare in-memory loop (no meters, no syncs), to size the Trainer's own overhead --
def bare_loop(name: str, ds: Any, split: dict[str, np.ndarray], epochs: int) -> dict[str, Any]:
    from medtorch.models import create_model

    spec = SPECS[name]
    x = torch.from_numpy(np.ascontiguousarray(ds.inputs["x"][split["train"]], dtype=np.float32))
    y = torch.from_numpy(ds.y[split["train"]].astype(np.int64))
    torch.manual_seed(SEED)
    model = create_model(spec["model"], n_inputs=1, n_classes=5, **spec["params"])
    opt = torch.optim.Adam(model.parameters())
    n, rows = len(y), []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n)
        for s in range(0, n, LAB_BATCH):
            idx = order[s : s + LAB_BATCH]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        rows.append({"epoch": epoch, "epoch_time_s": dt, "train_samples_per_s": n / dt})
        log(f"  bare {name} epoch {epoch}/{epochs} {dt:.1f}s ({n / dt:.0f} samples/s)")
    return {"epochs": rows}


# -- (c) the medtorch recipe through the pipeline ----------------------------------------------
def recipe_run(name: str, threads: int | None, target: float, extra: list[str]) -> dict[str, Any]:
    from medtorch.config import load_config
    from medtorch.pipeline import train_run

    recipe = ROOT / SPECS[name]["recipe"]
    overrides = ["trainer.progress=false", *extra]
    if threads is not None:
        overrides.append(f"trainer.num_threads={threads}")
    cfg = load_config(recipe, overrides)
    out: dict[str, Any] = {"recipe": str(recipe.relative_to(ROOT)), "overrides": overrides}
    with tempfile.TemporaryDirectory(prefix="bench_lab_") as tmp:
        t0 = time.perf_counter()
        error = None
        try:
            run_dir = train_run(cfg, Path(tmp), bundled=True)
        except Exception as exc:  # e.g. the report stage not landed yet: keep what was written
            error = f"{type(exc).__name__}: {exc}"
            dirs = sorted(p for p in Path(tmp).iterdir() if p.is_dir())
            run_dir = dirs[-1] if dirs else None
        out["wall_s"] = time.perf_counter() - t0
        out["error"] = error
        if run_dir is None:
            return out
        hist_path = run_dir / "history.csv"
        hist: list[dict[str, float]] = []
        if hist_path.is_file():
            import csv

            with hist_path.open() as f:
                hist = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        out["epochs"] = hist
        mpath = run_dir / "metrics.json"
        if mpath.is_file():
            m = json.loads(mpath.read_text())
            out["fit_wall_s"] = m.get("fit_wall_s")
            out["best_epoch"] = m.get("best_epoch")
            try:
                out["test_accuracy"] = m["test"]["overall"]["accuracy"]["value"]
            except (KeyError, TypeError):
                out["test_accuracy"] = None
        elif (run_dir / "predictions_test.csv").is_file():
            import csv

            with (run_dir / "predictions_test.csv").open() as f:
                r = list(csv.DictReader(f))
            out["test_accuracy"] = float(np.mean([a["y_true"] == a["y_pred"] for a in r]))
    # time to the lab's accuracy: cumulative epoch time until valid accuracy >= target
    cum, out["time_to_lab_acc_s"], out["epoch_reaching_lab_acc"] = 0.0, None, None
    for r in out.get("epochs", []):
        cum += r["epoch_time_s"]
        if r["valid_accuracy"] >= target:
            out["time_to_lab_acc_s"], out["epoch_reaching_lab_acc"] = cum, int(r["epoch"])
            break
    out["target_accuracy"] = target
    out["sum_epoch_time_s"] = sum(r["epoch_time_s"] for r in out.get("epochs", []))
    if out.get("epochs"):
        r = out["epochs"][-1]
        log(
            f"  recipe {name}: {len(out['epochs'])} epochs, wall {out['wall_s']:.1f}s, "
            f"test acc {out.get('test_accuracy')}, valid acc >= {target:.3f} after "
            f"{out['time_to_lab_acc_s']} s (epoch {out['epoch_reaching_lab_acc']})"
        )
    return out


# -- driver -----------------------------------------------------------------------------------
def speed(run: dict[str, Any]) -> float:
    return med([r["train_samples_per_s"] for r in run["epochs"]])


def s_per_epoch(run: dict[str, Any]) -> float:
    return med([r["epoch_time_s"] for r in run["epochs"]])


def bench_model(name: str, ds: Any, split: dict, args: argparse.Namespace) -> dict[str, Any]:
    spec = SPECS[name]
    full = args.cnn_epochs if name == "cnn" else args.gru_full_epochs
    short = full if name == "cnn" else args.gru_epochs
    res: dict[str, Any] = {
        "model": spec["model"],
        "params": spec["params"],
        "lab_epochs": spec["epochs"],
        "accuracy_run_epochs": full,
        "speed_run_epochs": short,
        "repeats": [],
    }
    for rep in range(args.repeats):
        epochs = full if rep == 0 else short
        la = os.getloadavg()[0]
        log(f"{name} repeat {rep + 1}/{args.repeats}: lab loop, {epochs} epochs")
        lab = lab_loop(name, ds, split, epochs, args.lab_acc_meter)
        log(f"{name} repeat {rep + 1}/{args.repeats}: medtorch Trainer, same hyper-parameters")
        mt = medtorch_same(name, ds, split, epochs, args.threads)
        ratio = speed(mt) / speed(lab)
        floor = None
        if name in args.floor:
            log(f"{name} repeat {rep + 1}/{args.repeats}: bare in-memory loop (floor)")
            floor = bare_loop(name, ds, split, min(epochs, args.floor_epochs))
        res["repeats"].append(
            {
                "repeat": rep + 1,
                "epochs": epochs,
                "loadavg_1min_before": la,
                "loadavg_1min_after": os.getloadavg()[0],
                "lab": lab,
                "medtorch_same": mt,
                "speed_ratio": ratio,
                "bare_floor": floor,
            }
        )
        log(
            f"{name} repeat {rep + 1}: lab {speed(lab):.0f} samples/s, medtorch {speed(mt):.0f} "
            f"samples/s, ratio {ratio:.2f}x; test acc lab {lab['test_accuracy']:.4f} "
            f"medtorch {mt['test_accuracy']:.4f}"
        )
    reps = res["repeats"]
    acc_reps = [r for r in reps if r["epochs"] == full]
    lab_acc = med([r["lab"]["test_accuracy"] for r in acc_reps])
    res["summary"] = {
        "lab_s_per_epoch": med([s_per_epoch(r["lab"]) for r in reps]),
        "lab_train_samples_per_s": med([speed(r["lab"]) for r in reps]),
        "lab_test_accuracy": lab_acc,
        "lab_wall_s_full_run": med([r["lab"]["wall_s"] for r in acc_reps]),
        "medtorch_s_per_epoch": med([s_per_epoch(r["medtorch_same"]) for r in reps]),
        "medtorch_train_samples_per_s": med([speed(r["medtorch_same"]) for r in reps]),
        "medtorch_test_accuracy": med([r["medtorch_same"]["test_accuracy"] for r in acc_reps]),
        "medtorch_test_accuracy_best_epoch": med(
            [r["medtorch_same"]["test_accuracy_best_valid_epoch"] for r in acc_reps]
        ),
        "speed_ratio_median": med([r["speed_ratio"] for r in reps]),
        "bare_floor_train_samples_per_s": med(
            [speed(r["bare_floor"]) for r in reps if r["bare_floor"]]
        ),
        "speed_ratio_all": [r["speed_ratio"] for r in reps],
    }
    s = res["summary"]
    # the lab's wall time for its own epoch count (measured when the full run was run)
    s["lab_wall_s_lab_epochs"] = (
        s["lab_wall_s_full_run"]
        if full == spec["epochs"]
        else s["lab_s_per_epoch"] * spec["epochs"]  # estimated from the measured s/epoch
    )
    s["lab_wall_s_is_estimate"] = full != spec["epochs"]

    if not args.skip_recipe:
        target = args.target_acc.get(name, lab_acc)
        s["recipe_target_accuracy"] = target
        s["recipe_target_from"] = "--target-acc" if name in args.target_acc else "lab test accuracy"
        extra = list(args.recipe_set)
        if args.quick:
            extra.append("trainer.max_epochs=2")
        runs = []
        for rep in range(args.recipe_repeats):
            log(f"{name} recipe run {rep + 1}/{args.recipe_repeats}: {spec['recipe']}")
            runs.append(recipe_run(name, args.threads, target, extra))
        res["recipe"] = runs
        ok = [r for r in runs if r.get("epochs")]
        tta = [r["time_to_lab_acc_s"] for r in ok]
        s["recipe_wall_s"] = med([r["wall_s"] for r in ok])
        s["recipe_fit_wall_s"] = med([r.get("fit_wall_s") or math.nan for r in ok])
        s["recipe_test_accuracy"] = med([r.get("test_accuracy") or math.nan for r in ok])
        s["recipe_time_to_lab_acc_s"] = (
            med([t for t in tta if t is not None])
            if all(t is not None for t in tta) and tta
            else None
        )
        s["recipe_reached_lab_acc"] = f"{sum(t is not None for t in tta)}/{len(tta)}"
        lab_wall = s["lab_wall_s_lab_epochs"]
        s["recipe_wall_fraction_of_lab"] = s["recipe_wall_s"] / lab_wall
        s["recipe_tta_fraction_of_lab"] = (
            s["recipe_time_to_lab_acc_s"] / lab_wall if s["recipe_time_to_lab_acc_s"] else None
        )
    return res


def _no_nan(o: Any) -> Any:
    """NaN -> None, so the JSON is strict (numpy scalars -> float)."""
    if isinstance(o, dict):
        return {k: _no_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_no_nan(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return None if math.isnan(o) else float(o)
    return o


def fmt_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'model':5} {'loop':22} {'s/epoch':>8} {'samples/s':>10} {'ratio':>6} {'test acc':>9}",
    ]
    for name, res in results.items():
        s = res["summary"]
        lines.append(
            f"{name:5} {'lab (DataLoader, w=2)':22} {s['lab_s_per_epoch']:8.2f} "
            f"{s['lab_train_samples_per_s']:10.0f} {'':>6} {s['lab_test_accuracy']:9.4f}"
        )
        lines.append(
            f"{name:5} {'medtorch same h-params':22} {s['medtorch_s_per_epoch']:8.2f} "
            f"{s['medtorch_train_samples_per_s']:10.0f} {s['speed_ratio_median']:5.2f}x "
            f"{s['medtorch_test_accuracy']:9.4f}"
        )
        if not math.isnan(s["bare_floor_train_samples_per_s"]):
            b = s["bare_floor_train_samples_per_s"]
            lines.append(
                f"{name:5} {'bare in-memory loop':22} {'':>8} {b:10.0f} "
                f"{b / s['lab_train_samples_per_s']:5.2f}x {'-':>9}"
            )
        if "recipe_wall_s" in s:
            tta = s["recipe_time_to_lab_acc_s"]
            lines.append(
                f"{name:5} {'recipe':22} wall {s['recipe_wall_s']:.1f}s "
                f"({s['recipe_wall_fraction_of_lab']:.2f} of lab's "
                f"{s['lab_wall_s_lab_epochs']:.0f}s{' est.' if s['lab_wall_s_is_estimate'] else ''}), "
                f"valid acc >= {s['recipe_target_accuracy']:.4f} after "
                + (f"{tta:.1f}s ({s['recipe_tta_fraction_of_lab']:.2f} of lab)" if tta else "never")
                + f", test acc {s['recipe_test_accuracy']:.4f}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per loop (speed: median)")
    p.add_argument("--quick", action="store_true", help="smoke check: 1 repeat, 2 epochs")
    p.add_argument("--only", default="cnn,gru", help="comma list of: " + ", ".join(SPECS))
    p.add_argument("--out", default="benchmarks/results/lab_seizure.json")
    p.add_argument("--cnn-epochs", type=int, default=SPECS["cnn"]["epochs"])
    p.add_argument(
        "--gru-full-epochs",
        type=int,
        default=SPECS["gru"]["epochs"],
        help="epochs of the GRU accuracy run (repeat 1, both loops); the lab's 15 by default",
    )
    p.add_argument(
        "--gru-epochs",
        type=int,
        default=1,
        help="epochs of the GRU speed-only repeats (repeats 2..N)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--floor",
        default="cnn",
        help="models that also get a bare in-memory loop (speed floor of the Trainer); '' for none",
    )
    p.add_argument("--floor-epochs", type=int, default=2)
    p.add_argument("--recipe-repeats", type=int, default=1)
    p.add_argument("--recipe-set", action="append", default=[], help="extra recipe override")
    p.add_argument("--skip-recipe", action="store_true")
    p.add_argument(
        "--target-acc",
        action="append",
        default=[],
        metavar="MODEL=ACC",
        help="accuracy the recipe must reach (default: the lab loop's measured test accuracy)",
    )
    p.add_argument(
        "--medtorch-only",
        action="store_true",
        help="only (b), medtorch with the lab's hyper-parameters, once over the full epochs",
    )
    p.add_argument(
        "--lab-acc-meter",
        action="store_true",
        help="add per-batch accuracy meters to the lab loop (the course homework's train())",
    )
    args = p.parse_args(argv)
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    bad = [m for m in args.only if m not in SPECS]
    if bad:
        p.error(f"expected --only names from {list(SPECS)}, got {bad}")
    args.floor = [m.strip() for m in args.floor.split(",") if m.strip()]
    args.target_acc = {k: float(v) for k, _, v in (t.partition("=") for t in args.target_acc)}
    if args.quick:
        args.repeats = 1
        args.cnn_epochs = 2
        args.gru_full_epochs = 1
        args.gru_epochs = 1
    return args


def medtorch_only(ds: Any, split: dict[str, np.ndarray], args: argparse.Namespace) -> int:
    """(b) alone for each model of ``--only``, over its full epochs; the summary to ``--out``."""
    epochs = {"cnn": args.cnn_epochs, "gru": args.gru_full_epochs}
    report = {}
    for name in args.only:
        t = time.time()
        r = medtorch_same(name, ds, split, epochs[name], args.threads)
        out = {k: v for k, v in r.items() if k != "epochs"}
        out["wall_s"] = time.time() - t
        out["samples_per_s_median"] = sorted(e["train_samples_per_s"] for e in r["epochs"])[
            len(r["epochs"]) // 2
        ]
        print(json.dumps(out, default=str))
        report[name] = out
    body = report[args.only[0]] if len(args.only) == 1 else report
    Path(args.out).write_text(json.dumps(body, indent=1, default=str))
    log(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, nproc {os.cpu_count()}")
    ds, split, data_info = load_data()
    log(f"data: {data_info}")
    if args.medtorch_only:
        return medtorch_only(ds, split, args)
    results = {name: bench_model(name, ds, split, args) for name in args.only}
    table = fmt_table(results)
    print(table, flush=True)
    report = {
        "benchmark": "lab_seizure",
        "date_utc": started.isoformat(timespec="seconds"),
        "duration_s": (datetime.now(timezone.utc) - started).total_seconds(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: v for k, v in vars(args).items()},
        "machine": {
            "nproc": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "data": data_info,
        "lab_loop": {
            "batch_size": LAB_BATCH,
            "num_workers": LAB_WORKERS,
            "optimizer": "Adam() defaults (lr 1e-3)",
            "normalisation": "none (raw signals)",
            "reference": "ast0414/CSE6250BDH-LAB-DL 2_CNN.ipynb, 3_RNN.ipynb @284ab52",
            "per_batch_accuracy_meter": args.lab_acc_meter,
        },
        "results": results,
        "table": table,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_no_nan(report), indent=2, default=float, allow_nan=False))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

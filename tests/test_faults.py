"""Fault injection on a real `medtorch train` process: kill -9 at five points, SIGTERM, SIGINT.

Each case starts ``medtorch train lab2_seizure_cnn`` (3 epochs on an 800-row slice of the
bundled UCI seizure data, a few seconds) in a subprocess held at a named point by the test
hook ``MEDTORCH_TEST_PAUSE_AT`` (:mod:`medtorch.train.faults`), so the kill lands exactly
there: in the first epoch (no checkpoint yet), half-way through writing ``last.pt``, between
``last.pt`` and the best-weights files, in the middle of epoch 2, and during the final
scoring. The run is then resumed with ``medtorch train --resume RUN`` and must end with the
weights, history, predictions and every number of ``metrics.json`` of an uninterrupted run,
exactly. The processes run concurrently to keep the suite short.

With ``MEDTORCH_RELIABILITY_LOG=<file>`` each case appends what it observed (exit codes,
numbers compared, largest difference) as a JSON line, for benchmarks/RELIABILITY.md.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import medtorch
from medtorch.cli import main
from medtorch.train import checkpoint as ckpt

pytestmark = pytest.mark.slow

BUNDLED = Path(medtorch.__file__).parent / "data" / "bundled" / "uci_epileptic_seizure.csv.gz"
TIMING = {"epoch_time_s", "train_samples_per_s"}
STEPS_PER_EPOCH = 8  # 512 training rows (64% of 800) in batches of 64


def sets(csv_path: Path) -> list[str]:
    pairs = ["trainer.max_epochs=3", "trainer.batch_size=64", "trainer.progress=false",
             "trainer.cpu_conv=native", "trainer.num_threads=1", "eval.n_bootstrap=20",
             f"task.params.path={csv_path}"]  # fmt: skip
    return [a for p in pairs for a in ("--set", p)]


def cases(between_epoch: int) -> dict[str, tuple[str, int]]:
    """name -> (pause point, signal sent there)."""
    kill = int(signal.SIGKILL)
    return {
        "first_epoch": ("batch@3", kill),
        "checkpoint_write": ("checkpoint_write:last.pt@2", kill),
        "between_files": (f"between_files@{between_epoch}", kill),
        "mid_epoch": (f"batch@{STEPS_PER_EPOCH + 4}", kill),
        "final_scoring": ("predict@2", kill),  # valid is scored first, then test
        "sigterm": (f"batch@{STEPS_PER_EPOCH + 4}", int(signal.SIGTERM)),
        "sigint": (f"batch@{2 * STEPS_PER_EPOCH + 3}", int(signal.SIGINT)),
    }


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    lines = gzip.open(BUNDLED, "rt").read().splitlines()
    path = tmp_path_factory.mktemp("data") / "uci_800.csv"
    path.write_text("\n".join(lines[:801]) + "\n")
    return path


@pytest.fixture(scope="module")
def reference(small_csv: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert main(["train", "lab2_seizure_cnn", "--out", str(out), *sets(small_csv)]) == 0
    (run,) = out.iterdir()
    return run


def last_improving_epoch(run: Path) -> int:
    """The last epoch whose valid accuracy was a new best (the one whose best.pt a crash
    between files would leave stale)."""
    rows = list(csv.DictReader((run / "history.csv").open()))
    best, last = -math.inf, 1
    for r in rows:
        if float(r["valid_accuracy"]) > best:
            best, last = float(r["valid_accuracy"]), int(r["epoch"])
    return last


@pytest.fixture(scope="module")
def faulted(small_csv: Path, reference: Path, tmp_path_factory) -> dict[str, dict]:
    """Start every case's process at once, signal each at its point; name -> what happened."""
    root = tmp_path_factory.mktemp("faults")
    src = str(Path(medtorch.__file__).parents[1])
    procs = {}
    for name, (point, sig) in cases(last_improving_epoch(reference)).items():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDTORCH_TEST_PAUSE_AT": point,
               "MEDTORCH_TEST_PAUSE_MARKER": str(root / f"{name}.marker"),
               "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        out = root / name
        cmd = [sys.executable, "-m", "medtorch", "train", "lab2_seizure_cnn", "--out", str(out),
               *sets(small_csv)]  # fmt: skip
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True), sig, out)  # fmt: skip
    results = {}
    deadline = time.monotonic() + 240
    for name, (proc, sig, out) in procs.items():
        marker = root / f"{name}.marker"
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        reached = marker.exists()
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        runs = list(out.iterdir()) if out.is_dir() else []
        results[name] = {"reached": reached, "rc": proc.returncode, "stderr": err,
                         "run": runs[0] if len(runs) == 1 else None}  # fmt: skip
    return results


def numbers(obj, prefix: str = "") -> dict[str, float]:
    """Every number in a metrics.json-like tree, by its path."""
    if isinstance(obj, dict):
        return {
            k: v for key, val in obj.items() for k, v in numbers(val, f"{prefix}/{key}").items()
        }
    if isinstance(obj, list):
        return {
            k: v for i, val in enumerate(obj) for k, v in numbers(val, f"{prefix}[{i}]").items()
        }
    if isinstance(obj, bool) or not isinstance(obj, (int, float)):
        return {}
    return {prefix: float(obj)}


def run_files(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("run", "fit_wall_s"):
        metrics.pop(key)
    hist = [{k: v for k, v in r.items() if k not in TIMING}
            for r in csv.DictReader((run / "history.csv").open())]  # fmt: skip
    folder = run / "checkpoints"
    return {
        "metrics": metrics,
        "history": hist,
        "best": ckpt.load_weights(folder / "best.safetensors")[0],
        "last": ckpt.load_checkpoint(folder / "last.pt")["model"],
        "predictions": (run / "predictions_test.csv").read_text(),
    }


def log_result(case: str, record: dict) -> None:
    if path := os.environ.get("MEDTORCH_RELIABILITY_LOG"):
        with open(path, "a") as f:
            f.write(json.dumps({"case": case, **record}) + "\n")


def state_after_kill(case: str, run: Path) -> None:
    """What the folder holds at the moment of the kill, as each point implies."""
    folder = run / "checkpoints"
    if case == "first_epoch":
        assert not (folder / "last.pt").exists()
    elif case == "checkpoint_write":
        assert (folder / "last.pt.tmp").is_file()  # half written, never renamed
        assert ckpt.load_checkpoint(folder / "last.pt")["epoch"] == 1
    elif case == "between_files":
        last = ckpt.load_checkpoint(folder / "last.pt")
        if last["best_epoch"] > 1:  # the copies are one best epoch behind
            assert not ckpt.best_is_current(folder, last)
    elif case == "mid_epoch":
        assert ckpt.load_checkpoint(folder / "last.pt")["epoch"] == 1
    elif case == "final_scoring":
        assert not (run / "metrics.json").exists()
        assert ckpt.load_checkpoint(folder / "last.pt")["epoch"] == 3
    rows = (
        list(csv.DictReader((run / "history.csv").open())) if (run / "history.csv").exists() else []
    )
    if (folder / "last.pt").exists():
        assert len(rows) <= ckpt.load_checkpoint(folder / "last.pt")["epoch"]


@pytest.mark.parametrize("case", list(cases(1)))
def test_resumed_run_ends_as_an_unbroken_one(case: str, faulted, reference: Path, capsys) -> None:
    got = faulted[case]
    assert got["reached"], got["stderr"][-2000:]
    run = got["run"]
    assert run is not None
    sig = cases(1)[case][1]
    if sig == signal.SIGKILL:
        assert got["rc"] == -signal.SIGKILL
    else:  # a graceful stop: one line with the real folder's resume command
        assert got["rc"] == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], got["stderr"][-2000:]
        errors = [ln for ln in got["stderr"].splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in got["stderr"]
        assert f"medtorch train --resume {run}" in errors[0]
    state_after_kill(case, run)

    t0 = time.perf_counter()
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    resume_s = time.perf_counter() - t0
    a, b = run_files(run), run_files(reference)
    na, nb = numbers(a["metrics"]), numbers(b["metrics"])
    diff = max((abs(na[k] - nb[k]) for k in nb if k in na and not math.isnan(nb[k])), default=0.0)
    w_diff = max(float((a[w][k].double() - b[w][k].double()).abs().max())
                 for w in ("best", "last") for k in b[w])  # fmt: skip
    log_result(case, {"rc_faulted": got["rc"], "rc_resumed": 0, "metric_numbers": len(nb),
                      "max_metric_diff": diff, "max_weight_diff": w_diff,
                      "resume_s": round(resume_s, 2)})  # fmt: skip
    assert na.keys() == nb.keys() and a["metrics"] == b["metrics"]
    assert a["history"] == b["history"]
    for w in ("best", "last"):
        assert a[w].keys() == b[w].keys() and all(torch.equal(a[w][k], b[w][k]) for k in b[w])
    assert a["predictions"] == b["predictions"]
    assert not list((run / "checkpoints").glob("*.tmp"))
    last = ckpt.load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt.best_is_current(run / "checkpoints", last)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fit_wall_s"] > 0

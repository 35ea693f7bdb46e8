"""ECG speed on the CPU: MIT-BIH beat extraction and ``medtorch predict`` per record.

(a) **Beat extraction**: :func:`medtorch.ecg.beats.extract_beats` on all 48 MIT-BIH
    records with the task's defaults (lead MLII, 360 Hz, 0.25 s + 0.45 s windows, baseline
    + 60 Hz notch filter, RR features; 2 worker processes), ``--repeats`` times, median;
    with ``--run``, again with that run's task params (e.g. 180 Hz, patient-relative
    inputs and beat-shape features).
(b) **Prediction on a whole 30-minute record** (``--records``, default 100 and 208) with a
    trained beat run (``--run``): the exact steps of ``medtorch predict`` (read the record,
    beats from the annotations, condition the lead, build windows + RR features, normalise,
    classify) in one process, the classifier being PyTorch or ONNX Runtime side by side on
    the same inputs (both at ``--threads`` threads). Reported per back end: beats/s end to
    end and of the model alone, and how many times faster than real time the whole record
    is (record duration / end-to-end wall time). Also the wall time of the CLI command
    itself (``medtorch predict RUN RECORD --out FILE`` in a subprocess, Python start-up and
    imports included). Medians over ``--repeats``; the first call of each back end is an
    untimed warm-up.

(c) **QRS detection** on the same records, for records without beat annotations: each of
    ``medtorch.ecg.predict.DETECTORS`` on the whole MLII lead, median of ``--repeats``;
    beats found and times faster than real time. Runs without ``--run`` too.

    .venv/bin/python benchmarks/speed/ecg_inference.py --run runs/mitdb_aami_resnet1d-<time>
    .venv/bin/python benchmarks/speed/ecg_inference.py --run RUN --quick      # 1 repeat, record 100 only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.data.paths import portable_command

ROOT = Path(__file__).resolve().parents[2]


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), [round(t, 4) for t in times]


def bench_extraction(mitdb: Path, repeats: int, run_dir: Path | None = None) -> dict[str, Any]:
    """With ``run_dir``: the run's own task params (e.g. patient_norm, morph_features)."""
    from medtorch.ecg.beats import extract_beats
    from medtorch.ecg.predict import BEAT_DEFAULTS
    from medtorch.ecg.records import ALL_RECORDS
    from medtorch.pipeline import load_run

    holder: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if run_dir is not None:  # the beat params predict uses, bar rr (an input, not extraction)
        task = load_run(run_dir)[0].task.params
        params = {k: v for k, v in task.items() if k in BEAT_DEFAULTS and k != "rr"}

    def run() -> None:
        holder["out"] = extract_beats(mitdb, ALL_RECORDS, **params)

    med, times = _median_time(run, repeats)
    return {
        "params": params or "task defaults",
        "records": len(ALL_RECORDS),
        "beats": len(holder["out"]["y"]),
        "workers": min(2, os.cpu_count() or 1),
        "median_s": round(med, 3),
        "times_s": times,
        "target_s": 30.0,
        "met": med < 30.0,
    }


def _inputs(run_dir: Path, stem: Path) -> tuple[list[np.ndarray], float]:
    """The inputs ``medtorch predict`` builds for a beat run, and the record duration (s)."""
    from medtorch.data.sources.wfdb_reader import read_record
    from medtorch.ecg.predict import BEAT_DEFAULTS, lead_beat_inputs, record_beat_samples
    from medtorch.ecg.records import select_lead
    from medtorch.pipeline import load_normalizer, load_run

    cfg, spec = load_run(run_dir)
    p = {**BEAT_DEFAULTS, **{k: v for k, v in cfg.task.params.items() if k in BEAT_DEFAULTS}}
    norm = load_normalizer(run_dir)
    rec = read_record(stem)
    i, _ = select_lead(rec.sig_names, str(p["lead"]))
    raw = rec.signal[i]
    samples, _, _ = record_beat_samples(stem, raw, rec.fs_hz, True, "atr")
    x, rr, _ = lead_beat_inputs(raw, rec.fs_hz, samples, p)  # as medtorch predict builds them
    inputs = [norm.transform(x), rr][: len(spec["inputs"])]
    return inputs, rec.n_samples / rec.fs_hz


def bench_predict(
    run_dir: Path, mitdb: Path, records: list[str], repeats: int, threads: int
) -> dict[str, Any]:
    import onnxruntime as ort

    from medtorch.ecg.predict import predict_proba
    from medtorch.export import export_onnx
    from medtorch.pipeline import restore_model

    torch.set_num_threads(threads)
    _, spec, model = restore_model(run_dir)
    out: dict[str, Any] = {"run": run_dir.name, "model": spec["name"], "threads": threads,
                           "model_params": sum(p.numel() for p in model.parameters())}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        stem = mitdb / records[0]
        ex_inputs, _ = _inputs(run_dir, stem)
        example = tuple(torch.as_tensor(a[:8]) for a in ex_inputs)
        onnx_path = export_onnx(model, example, Path(tmp) / "m.onnx", spec["inputs"])
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]

        def onnx_proba(inputs: list[np.ndarray], batch: int = 4096) -> np.ndarray:
            parts = []
            for s in range(0, len(inputs[0]), batch):
                (logits,) = sess.run(
                    ["logits"], {n: a[s : s + batch] for n, a in zip(names, inputs)}
                )
                e = np.exp(logits - logits.max(1, keepdims=True))
                parts.append(e / e.sum(1, keepdims=True))
            return np.concatenate(parts)

        backends: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
            "pytorch": lambda inp: predict_proba(model, inp),
            "onnxruntime": onnx_proba,
        }
        for rec in records:
            stem = mitdb / rec
            inputs, duration_s = _inputs(run_dir, stem)
            n = len(inputs[0])
            prep_s, prep_times = _median_time(lambda stem=stem: _inputs(run_dir, stem), repeats)
            res: dict[str, Any] = {"beats": n, "duration_s": round(duration_s, 1),
                                   "preprocess_median_s": round(prep_s, 3),
                                   "preprocess_times_s": prep_times}  # fmt: skip
            probas = {}
            for name, fn in backends.items():
                probas[name] = fn(inputs)  # warm-up
                model_s, times = _median_time(lambda fn=fn, inp=inputs: fn(inp), repeats)
                e2e_s, e2e_times = _median_time(
                    lambda fn=fn, stem=stem: fn(_inputs(run_dir, stem)[0]), repeats
                )
                res[name] = {
                    "model_median_s": round(model_s, 4), "model_times_s": times,
                    "model_beats_per_s": round(n / model_s),
                    "end_to_end_median_s": round(e2e_s, 3), "end_to_end_times_s": e2e_times,
                    "end_to_end_beats_per_s": round(n / e2e_s),
                    "x_real_time": round(duration_s / e2e_s, 1),
                }  # fmt: skip
            res["max_abs_diff_proba"] = float(
                np.abs(probas["pytorch"] - probas["onnxruntime"]).max()
            )
            res["cli"] = _bench_cli(run_dir, stem, repeats, duration_s)
            out[rec] = res
    return out


def bench_detectors(mitdb: Path, records: list[str], repeats: int) -> dict[str, Any]:
    from medtorch.data.sources.wfdb_reader import read_record
    from medtorch.ecg.predict import DETECTORS, detect_beats
    from medtorch.ecg.records import select_lead

    out: dict[str, Any] = {}
    for r in records:
        rec = read_record(mitdb / r)
        lead = rec.signal[select_lead(rec.sig_names, "MLII")[0]]
        duration = len(lead) / rec.fs_hz
        for d in DETECTORS:
            n = len(detect_beats(lead, rec.fs_hz, d))
            med, times = _median_time(lambda: detect_beats(lead, rec.fs_hz, d), repeats)  # noqa: B023
            out[f"{r}/{d}"] = {"beats": n, "seconds": round(med, 3), "times": times,
                               "x_real_time": round(duration / med, 1)}  # fmt: skip
    return out


def _bench_cli(run_dir: Path, stem: Path, repeats: int, duration_s: float) -> dict[str, Any]:
    """Wall time of ``medtorch predict RUN RECORD --out FILE`` (start-up and imports included)."""
    exe = Path(sys.executable).with_name("medtorch")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(exe), "-q", "predict", str(run_dir), str(stem), "--out", f"{tmp}/p.csv"]
        med, times = _median_time(
            lambda: subprocess.run(cmd, check=True, capture_output=True), repeats
        )
    return {"command": portable_command(["medtorch", *cmd[1:5], "--out", "p.csv"]),
            "median_s": round(med, 3), "times_s": times,
            "x_real_time": round(duration_s / med, 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a trained mitdb_aami_beats run folder (for (b))")
    p.add_argument("--data-dir", default=os.environ.get("MEDTORCH_DATA"))
    p.add_argument("--records", nargs="+", default=["100", "208"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-extraction", action="store_true")
    p.add_argument("--quick", action="store_true", help="1 repeat, first record only")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ecg_speed.json")
    a = p.parse_args()
    if not a.data_dir:
        sys.exit("error: pass --data-dir or set MEDTORCH_DATA")
    from medtorch.ecg.records import mitdb_dir

    mitdb = mitdb_dir(a.data_dir)
    repeats = 1 if a.quick else a.repeats
    records = a.records[:1] if a.quick else a.records
    report: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": portable_command(["python", *sys.argv], a.data_dir),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_avg_at_start": os.getloadavg(),
        },
        "repeats": repeats,
    }
    if not a.skip_extraction:
        report["extraction"] = bench_extraction(mitdb, repeats)
        print("extraction:", json.dumps(report["extraction"]))
        if a.run:
            report["extraction_run_params"] = bench_extraction(mitdb, repeats, a.run)
            print("extraction, the run's params:", json.dumps(report["extraction_run_params"]))
    if a.run:
        report["predict"] = bench_predict(a.run, mitdb, records, repeats, a.threads)
        print("predict:", json.dumps(report["predict"], indent=1))
    report["detectors"] = bench_detectors(mitdb, records, repeats)
    print("QRS detection:", json.dumps(report["detectors"], indent=1))
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

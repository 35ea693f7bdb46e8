"""CinC 2017 cross-validation: per-fold and pooled out-of-fold challenge scores of finished
runs (one run per fold of ``grouped_kfold``, or several: a seed ensemble), and the cost of
the networks.

Each run's ``predictions_test.csv`` holds its test fold's records; pooled, every record is
scored once. The challenge score (mean F1 over N, A, O) and its per-class F1 get bootstrap
CIs over records. One record per recording; the release identifies no patient.

    python benchmarks/cinc/cinc2017_cv.py --runs runs/cinc2017_resnet_cpu-* --json FILE
    python benchmarks/cinc/cinc2017_cv.py --part valid --runs RUN_SEED0 RUN_SEED1 --json FILE
    python benchmarks/cinc/cinc2017_cv.py --cost --run RUN --json FILE
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _predictions(run: Path, part: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from medtorch import open_run

    r = open_run(run)
    t = r.predictions if part == "test" else r.valid_predictions
    return t["y_true"].to_numpy(int), t.filter(like="p_").to_numpy(float), list(t["group"])


def _fold_predictions(runs: list[Path], part: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One fold's predictions: several runs of the fold (seeds) are a probability-averaged
    ensemble, as ``medtorch predict RUN --ensemble ...`` averages them."""
    y, p, g = _predictions(runs[0], part)
    for other in runs[1:]:
        y2, p2, g2 = _predictions(other, part)
        assert g2 == g and (y2 == y).all(), f"{other} scored other records than {runs[0]}"
        p = p + p2
    return y, p / len(runs), g


def score_runs(runs: list[Path], n_bootstrap: int, part: str = "test") -> dict:
    """Per-fold and pooled scores of ``part`` (``test``: out of fold; ``valid``: each
    fold's validation records, for choosing a recipe); several runs of one fold are
    ensembled."""
    from medtorch.metrics.cinc2017 import challenge_report

    by_fold: dict[int, list[Path]] = {}
    for run in sorted(runs):
        by_fold.setdefault(int(json.loads((run / "splits.json").read_text())["fold"]), []).append(
            run
        )
    folds, ys, ps, gs = {}, [], [], []
    for fold, fold_runs in sorted(by_fold.items()):
        y, p, g = _fold_predictions(fold_runs, part)
        r = challenge_report(y, p, ["N", "A", "O", "~"], np.array(g), n_bootstrap)
        assert r is not None
        metrics = [json.loads((run / "metrics.json").read_text()) for run in fold_runs]
        folds[str(fold)] = {
            "runs": [run.name for run in fold_runs], "n_records": len(y),
            "best_epoch": [m.get("best_epoch") for m in metrics],
            "fit_wall_s": [m.get("fit_wall_s") for m in metrics],
            "f1_nao": r["overall"]["f1_nao"],
            "f1": {c: v["F1"]["value"] for c, v in r["per_class"].items()},
        }  # fmt: skip
        ys.append(y)
        ps.append(p)
        gs += g
    y, p = np.concatenate(ys), np.concatenate(ps)
    if part == "test":
        assert len(set(gs)) == len(gs), "a record is in two test folds"
    pooled = challenge_report(y, p, ["N", "A", "O", "~"], np.array(gs), n_bootstrap)
    per_fold = [f["f1_nao"]["value"] for f in folds.values()]
    return {"part": part, "folds": folds, "pooled": pooled,
            "fold_mean_f1_nao": float(np.mean(per_fold)), "fold_sd_f1_nao": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else None,
            "caveat": "one record per recording; patients not identified in the release"}  # fmt: skip


def _train_rate(m, batch: int, fs: int, steps: int) -> float:
    """Training strips/s of ``steps`` AdamW steps on random 30 s crops of 60 s strips."""
    import torch

    xb, nb = torch.randn(batch, 1, 60 * fs), torch.full((batch, 1), 60.0 * fs)
    opt = torch.optim.AdamW(m.parameters())
    t = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(m(xb, nb), torch.zeros(batch, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t)


def cost(run: Path | None, threads: tuple[int, ...] = (1, 2), repeats: int = 3) -> dict:
    """FLOPs per 60 s strip and CPU training speed (median of ``repeats``, for each number
    of ``threads``) of the full-size and CPU-sized networks; ``medtorch predict`` wall time
    on a 60 s strip with ``run``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from medtorch.models.registry import create_model

    sizes = {
        "cinc2017_hannun_full (300 Hz)": ({}, 300, 4),
        "cinc2017_resnet_cpu (50 Hz)": (
            {"base_filters": 8, "n_blocks": 10, "kernel_size": 8},
            50,
            16,
        ),
    }
    out: dict = {}
    for name, (params, fs, batch) in sizes.items():
        m = create_model("hannun_segments", n_inputs=1, n_classes=4, train_crop=30 * fs, **params)
        m.eval()
        x, n = torch.randn(1, 1, 60 * fs), torch.tensor([[60.0 * fs]])
        with FlopCounterMode(display=False) as fc:
            m(x, n)
        m.train()
        rates: dict[str, list[float]] = {}
        for k in threads:
            torch.set_num_threads(k)
            _train_rate(m, batch, fs, 1)  # warm-up
            rates[str(k)] = [_train_rate(m, batch, fs, 3) for _ in range(repeats)]
        out[name] = {"params": sum(q.numel() for q in m.parameters()),
                     "gflops_per_60s_strip": fc.get_total_flops() / 1e9,
                     "train_strips_per_s_30s_crops": {k: float(np.median(v)) for k, v in rates.items()},
                     "train_strips_per_s_repeats": rates,
                     "segment_s": m.segment_samples / fs, "receptive_field_s": m.receptive_field / fs}  # fmt: skip
    torch.set_num_threads(max(threads))
    if run is not None:
        import tempfile

        from medtorch.cli import main

        with tempfile.TemporaryDirectory() as d:
            strip = Path(d) / "s.csv"
            strip.write_text("\n".join(f"{v:.4f}" for v in np.sin(np.arange(18000) / 40)))
            times = []
            for _ in range(5):
                t = time.perf_counter()
                assert (
                    main(["-q", "predict", str(run), str(strip), "--out", str(Path(d) / "p.csv")])
                    == 0
                )
                times.append(time.perf_counter() - t)
        out["predict_60s_strip_ms"] = {
            "median": 1000 * float(np.median(times[1:])),
            "first": 1000 * times[0],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", type=Path, default=[])
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--run", type=Path, default=None, help="a run for the predict timing")
    ap.add_argument(
        "--part",
        choices=("test", "valid"),
        default="test",
        help="score the test folds (out of fold) or the validation parts",
    )
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    result = cost(args.run) if args.cost else score_runs(args.runs, args.n_bootstrap, args.part)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result if args.cost else {k: v for k, v in result.items() if k != "pooled"}
                     | {"pooled_f1_nao": result["pooled"]["overall"]["f1_nao"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

"""CinC 2017: does a per-class weight on the probabilities, fitted on validation records,
raise the challenge score (mean F1 over N, A, O) of records it was not fitted on?

Reads only validation predictions (``predictions_valid.csv``; several runs of one fold are
averaged as an ensemble). The validation records are halved at random; weights for A, O
and ~ (N fixed at 1) are fitted on one half by coordinate search over a log grid, and the
change in mean F1 against the plain argmax is measured on the other half, both ways, over
``--repeats`` halvings.

    python benchmarks/cinc/cinc2017_class_weights.py --runs RUN [RUN ...] --json FILE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from medtorch import open_run

GRID = np.exp(np.linspace(np.log(0.4), np.log(2.5), 15))


def _valid(run: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    v = open_run(run).valid_predictions
    return v["y_true"].to_numpy(int), v.filter(like="p_").to_numpy(float), list(v["group"])


def f1_nao(y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(y, pred, labels=[0, 1, 2], average=None, zero_division=0).mean())


def fit_weights(y: np.ndarray, p: np.ndarray, sweeps: int = 3) -> np.ndarray:
    """Per-class weights (N fixed at 1) that maximise mean F1 (N, A, O) of argmax(p * w)."""
    w, best = np.ones(p.shape[1]), f1_nao(y, p.argmax(1))
    for _ in range(sweeps):
        for c in range(1, p.shape[1]):
            for g in GRID:
                trial = w.copy()
                trial[c] = g
                if (score := f1_nao(y, (p * trial).argmax(1))) > best + 1e-9:
                    best, w = score, trial
    return w


def split_half_gain(y: np.ndarray, p: np.ndarray, repeats: int, seed: int) -> list[float]:
    rng, gains = np.random.default_rng(seed), []
    for _ in range(repeats):
        idx = rng.permutation(len(y))
        a, b = idx[: len(y) // 2], idx[len(y) // 2 :]
        for fit, ev in ((a, b), (b, a)):
            w = fit_weights(y[fit], p[fit])
            gains.append(f1_nao(y[ev], (p[ev] * w).argmax(1)) - f1_nao(y[ev], p[ev].argmax(1)))
    return gains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="runs of one fold")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    parts = [_valid(r) for r in args.runs]
    y, groups = parts[0][0], parts[0][2]
    assert all(g == groups for _, _, g in parts), "the runs scored other validation records"
    p = np.mean([q for _, q, _ in parts], axis=0)
    gains = split_half_gain(y, p, args.repeats, args.seed)
    out = {"runs": [r.name for r in args.runs], "n_records": len(y),
           "f1_nao_argmax": f1_nao(y, p.argmax(1)),
           "gain_mean": float(np.mean(gains)), "gain_sd": float(np.std(gains)),
           "weights_fitted_on_all": fit_weights(y, p).tolist()}  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

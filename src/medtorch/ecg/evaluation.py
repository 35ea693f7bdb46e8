"""Helpers of the ECG model-selection checks (``benchmarks/ecg/``): the recipe's beats, the
RR gate fitted leave-one-record-out, and scores of S calls and of AAMI reports.

:func:`recipe_beats` extracts beats as ``recipes/mitdb_aami_resnet1d.yaml`` does;
:func:`gate_predict` fits :class:`~medtorch.models.rr_gate.RRGate` exactly as the model does;
:func:`loro_predict` calls every DS1 beat with a gate fitted on the other DS1 records;
:func:`s_scores` scores S calls (Se, +P, F1 in %); :func:`aami_rows` turns an
:func:`~medtorch.metrics.aami.aami_report` into percentages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.paths import resolve_data_dir
from medtorch.ecg.beats import extract_beats
from medtorch.ecg.features import MORPH_FEATURES, N_PATIENT_RR
from medtorch.ecg.records import DS1, mitdb_dir

Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# the beats of recipes/mitdb_aami_resnet1d.yaml (task.params), for the ECG gate scripts
RECIPE_BEAT_PARAMS: dict[str, Any] = {"lead": "MLII", "fs_hz": 180.0, "window_s": (0.25, 0.45)}
# the recipe's gate columns with task.params.morph_features: 7 RR features, 6 shape features
MORPH_GATE_COLS = list(range(7)) + list(range(N_PATIENT_RR, N_PATIENT_RR + len(MORPH_FEATURES)))


def recipe_beats(records: list[str], data_dir: Path | None = None, **kw: Any) -> dict[str, Any]:
    """:func:`extract_beats` of ``records`` as the recipe extracts them (patient-relative)."""
    root = mitdb_dir(resolve_data_dir(str(data_dir) if data_dir else None))
    return extract_beats(root, records, **{"patient_norm": True, **RECIPE_BEAT_PARAMS, **kw})


def gate_predict(method: str, weight: float) -> Predictor:
    """Fit :class:`RRGate` exactly as the model does and call S where P(S | N or S) > 0.5."""

    def run(f_tr: np.ndarray, s_tr: np.ndarray, f_te: np.ndarray) -> np.ndarray:
        import torch

        from medtorch.models.rr_gate import RRGate

        gate = RRGate(f_tr.shape[1], n_classes=2, weight=weight, method=method)
        gate.fit(f_tr, s_tr.astype(int))
        with torch.no_grad():
            return (gate.score(torch.as_tensor(f_te)) > 0).numpy()

    return run


def loro_predict(predict: Predictor, f: np.ndarray, s: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """S calls of every DS1 beat by a gate fitted on the other DS1 records (leave one out)."""
    pred = np.zeros(len(s), bool)
    for r in DS1:
        te = rec == r
        pred[te] = predict(f[~te], s[~te], f[te])
    return pred


def s_scores(s_true: np.ndarray, s_pred: np.ndarray) -> dict[str, float]:
    """Sensitivity, positive predictivity and F1 (%, 1 decimal) of boolean S calls.

    >>> s_scores(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    {'Se': 50.0, '+P': 50.0, 'F1': 50.0}
    """
    tp = float((s_true & s_pred).sum())
    se = 100 * tp / max(int(s_true.sum()), 1)
    pp = 100 * tp / max(int(s_pred.sum()), 1)
    return {"Se": round(se, 1), "+P": round(pp, 1),
            "F1": round(2 * se * pp / (se + pp), 1) if se + pp else 0.0}  # fmt: skip


def _value(entry: Any) -> float:
    v = entry.get("value") if isinstance(entry, dict) else None
    return float("nan") if v is None else float(v)


def aami_rows(
    a: dict[str, Any],
    classes: tuple[str, ...] = ("N", "S", "V", "F"),
    stats: tuple[str, ...] = ("Se", "+P", "F1"),
) -> dict[str, float]:
    """Percentages ("S Se", ...), accuracy and kappa of an :func:`aami_report`; a value the
    report leaves undefined (None: +P with no beat called) is NaN, never 0."""
    out = {f"{c} {k}": 100 * _value(a["per_class"][c][k]) for c in classes for k in stats}
    out["accuracy"] = 100 * _value(a["overall"]["accuracy"])
    out["kappa"] = _value(a["overall"]["cohen_kappa"])
    return out

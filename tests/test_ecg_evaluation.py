"""medtorch.ecg.evaluation: the helpers the ECG model-selection scripts share."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medtorch.ecg.evaluation import (
    MORPH_GATE_COLS,
    RECIPE_BEAT_PARAMS,
    aami_rows,
    gate_predict,
    loro_predict,
    recipe_beats,
    s_scores,
)
from medtorch.ecg.features import MORPH_FEATURES, N_PATIENT_RR, PATIENT_RR_FEATURES
from medtorch.ecg.records import DS1
from medtorch.metrics.aami import aami_report


def test_s_scores() -> None:
    t = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    p = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    assert s_scores(t, p) == {"Se": 75.0, "+P": 75.0, "F1": 75.0}
    none = np.zeros(8, bool)
    assert s_scores(t, none) == {"Se": 0.0, "+P": 0.0, "F1": 0.0}


def test_morph_gate_cols_are_7_rr_then_the_shape_features() -> None:
    names = [(PATIENT_RR_FEATURES + MORPH_FEATURES)[c] for c in MORPH_GATE_COLS]
    assert names == PATIENT_RR_FEATURES[:7] + MORPH_FEATURES
    assert MORPH_GATE_COLS[7] == N_PATIENT_RR


def test_loro_predict_never_fits_on_the_record_it_calls() -> None:
    rec = np.repeat(np.array(DS1), 3)
    f = np.arange(len(rec), dtype=float)[:, None]
    seen: list[set[str]] = []

    def predict(f_tr: np.ndarray, s_tr: np.ndarray, f_te: np.ndarray) -> np.ndarray:
        seen.append(set(rec[f_tr[:, 0].astype(int)]))
        return np.ones(len(f_te), bool)

    pred = loro_predict(predict, f, np.zeros(len(rec), bool), rec)
    assert pred.all() and len(seen) == len(DS1)
    assert all(r not in s and len(s) == len(DS1) - 1 for r, s in zip(DS1, seen))


def test_gate_predict_logistic_separates_premature_beats() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[np.zeros(300, bool), np.ones(60, bool)]
    f = np.where(s, -0.4, 0.0)[:, None] + rng.normal(0, 0.05, (len(s), 1))
    called = gate_predict("logistic", 1.0)(f, s, f)
    assert called.dtype == bool and s_scores(s, called)["F1"] > 95


def test_aami_rows_in_percent_and_nan_when_undefined() -> None:
    y = np.array([0, 0, 0, 1, 2, 2, 3, 4])
    pred = np.array([0, 0, 0, 0, 2, 2, 0, 4])
    rows = aami_rows(aami_report(y, pred, n_bootstrap=0))
    assert rows["N Se"] == 100.0 and rows["V +P"] == 100.0
    assert rows["S Se"] == 0.0 and rows["accuracy"] == 75.0
    assert math.isnan(rows["F +P"])  # F never called: undefined, not 0
    assert set(rows) == {f"{c} {k}" for c in "NSVF" for k in ("Se", "+P", "F1")} | {
        "accuracy",
        "kappa",
    }


@pytest.mark.realdata
def test_recipe_beats_are_the_recipes_patient_relative_beats(data_dir: Path) -> None:
    b = recipe_beats(["100"], data_dir)
    before, after = (round(w * RECIPE_BEAT_PARAMS["fs_hz"]) for w in RECIPE_BEAT_PARAMS["window_s"])
    assert b["x"].shape[1:] == (2, before + after) and b["rr"].shape[1] == N_PATIENT_RR
    assert len(b["x"]) == len(b["y"]) > 2000 and set(b["record"]) == {"100"}

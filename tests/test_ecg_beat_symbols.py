"""Heartbeat scoring on a PhysioNet database with beat symbols MIT-BIH never uses.

Holter databases mark beats with ``B`` (bundle branch block, unspecified), ``r`` (R-on-T
PVC), ``n`` (supraventricular escape) and ``?`` (not classified): ``ecg-score`` and
``predict`` used to stop with ``KeyError: ''`` on them. Every WFDB beat symbol now maps to an
AAMI class or is counted as unmapped in the output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medtorch.ecg.beats import AAMI_CLASSES, AAMI_MAP, UNMAPPED
from medtorch.ecg.predict import predict_record
from medtorch.ecg.records import BEAT_SYMBOLS
from medtorch.ecg.score import _record_pairs, format_summary

SYMBOLS = ["N", "B", "r", "n", "?", "N", "B", "r"]


class TinyBeat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 5)
        self.head = nn.Linear(4 + 4, 5)

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(x).mean(dim=2), rr], dim=1))


def _holter_record(folder: Path) -> tuple[Path, list[str]]:
    """60 s, two leads at 360 Hz, a spike every 0.8 s, annotated with cycling symbols."""
    import wfdb

    fs, n = 360, 360 * 60
    beats = np.arange(360, n - 360, 288)
    sig = np.zeros((n, 2))
    t = np.arange(-20, 21)
    for b in beats:
        sig[b + t, 0] += np.exp(-(t**2) / 20.0)
        sig[b + t, 1] += 0.5 * np.exp(-(t**2) / 20.0)
    symbols = [SYMBOLS[i % len(SYMBOLS)] for i in range(len(beats))]
    wfdb.wrsamp("h1", fs=fs, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=sig,
                fmt=["16", "16"], write_dir=str(folder))  # fmt: skip
    wfdb.wrann("h1", "atr", beats, symbol=symbols, fs=fs, write_dir=str(folder))
    return folder / "h1", symbols


def test_every_wfdb_beat_symbol_has_a_class_or_is_unmapped() -> None:
    assert set(AAMI_MAP) | UNMAPPED == set(BEAT_SYMBOLS)
    assert UNMAPPED == {"?"} and set(AAMI_MAP.values()) <= set(AAMI_CLASSES)
    assert (AAMI_MAP["B"], AAMI_MAP["r"], AAMI_MAP["n"]) == ("N", "V", "N")


def test_predict_and_score_a_record_with_b_r_n_and_unclassified_beats(tmp_path: Path) -> None:
    stem, symbols = _holter_record(tmp_path)
    torch.manual_seed(0)
    model = TinyBeat().eval()
    rows, _ = predict_record(model, None, stem, {"lead": "MLII"})
    by_symbol = {r["ref_symbol"]: r["ref_class"] for r in rows}
    assert by_symbol == {"N": "N", "B": "N", "r": "V", "n": "N", "?": ""}
    n_unclassified = sum(r["ref_symbol"] == "?" for r in rows)
    assert n_unclassified > 0

    # at the annotated beats: "?" beats are counted apart, every other beat is scored
    true, pred, info = _record_pairs(model, None, stem, {"lead": "MLII"}, AAMI_CLASSES, False,
                                     0.15, "atr", "gqrs", 360.0, 360 * 60)  # fmt: skip
    assert info["unmapped"] == {"?": n_unclassified}
    assert len(true) == len(pred) == len(rows) - n_unclassified
    expected = [AAMI_CLASSES.index(r["ref_class"]) for r in rows if r["ref_symbol"] != "?"]
    assert true == expected and AAMI_CLASSES.index("V") in true

    # at detected beats: a "?" beat still takes its detection (not an extra), unscored
    true_d, pred_d, info_d = _record_pairs(model, None, stem, {"lead": "MLII"}, AAMI_CLASSES,
                                           True, 0.15, "atr", "gqrs", 360.0, 360 * 60)  # fmt: skip
    assert info_d["unmapped"] == {"?": n_unclassified} and n_unclassified == symbols.count("?")
    assert len(true_d) == len(pred_d)
    assert info_d["reference_beats"] == len(rows)
    scored = info_d["reference_beats"] - sum(info_d["unmapped"].values())
    assert len(true_d) == scored + info_d["extra"]


def test_summary_names_the_unmapped_beats() -> None:
    result = {"records": ["h1"], "beats_from": "annotations", "unmapped_beats": {"?": 7},
              "aami": {"n": 10, "per_class": {}, "overall": {
                  "accuracy": {"value": 0.5, "ci": None}, "cohen_kappa": {"value": 0.1}}}}  # fmt: skip
    text = format_summary(result)
    assert "not scored: 7 beats with no AAMI class ('?' x7)" in text

"""Beat and AF inference on WFDB records: annotations, QRS-detector fallback, CSV output."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from medtorch.ecg.predict import (
    DETECTORS,
    detect_beats,
    merge_episodes,
    predict_record,
    predict_record_to_csv,
    write_predictions_csv,
)
from medtorch.ecg.records import BEAT_SYMBOLS
from medtorch.errors import ConfigError


class TinyBeat(nn.Module):
    def __init__(self, n_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 5)
        self.head = nn.Linear(4 + 4, n_classes)

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).mean(dim=2)  # (N, 4)
        return self.head(torch.cat([h, rr], dim=1))


class AlwaysAF(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor([0.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b.expand(len(x), 2)  # (N, 2): p_af ~0.73


def test_merge_episodes_and_csv(tmp_path: Path) -> None:
    eps = merge_episodes([0, 10, 20, 30, 40], np.array([0, 1, 1, 0, 1], bool), 10.0)
    assert eps == [{"start_s": 10.0, "end_s": 30.0}, {"start_s": 40.0, "end_s": 50.0}]
    path = write_predictions_csv(tmp_path / "p.csv", [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    assert list(csv.DictReader(path.open())) == [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]


@pytest.fixture
def rec100_no_atr(data_dir: Path, tmp_path: Path) -> Path:
    for ext in ("hea", "dat"):
        shutil.copy(data_dir / "mitdb" / f"100.{ext}", tmp_path / f"100.{ext}")
    return tmp_path / "100"


@pytest.mark.realdata
def test_predict_with_annotations_and_af(data_dir: Path) -> None:
    torch.manual_seed(0)
    rows, eps = predict_record(TinyBeat(), lambda x: x * 2.0, data_dir / "mitdb" / "100.hea",
                               {"lead": "MLII"}, af_model=AlwaysAF(), max_duration_s=60.0)  # fmt: skip
    assert rows and {r["source"] for r in rows} == {"annotations"}
    assert rows[0]["ref_class"] in "NSVFQ" and set(rows[0]) >= {"sample", "time_s", "p_N", "p_Q"}
    assert all(abs(sum(r[f"p_{c}"] for c in "NSVFQ") - 1) < 1e-4 for r in rows)
    assert eps == [{"start_s": 0.0, "end_s": 60.0}]  # six positive 10 s windows, merged


class TinyWave(nn.Module):
    """A waveform-only beat model, like a ``lab_cnn`` run trained with ``rr: false``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=2)


@pytest.mark.realdata
def test_waveform_only_run_gets_x_only(data_dir: Path) -> None:
    """The task's ``rr`` setting, not the model's signature, decides the inputs."""
    rows, _ = predict_record(TinyWave(), None, data_dir / "mitdb" / "100",
                             {"lead": "MLII", "rr": False}, max_duration_s=30.0)  # fmt: skip
    assert len(rows) > 20 and all(abs(sum(r[f"p_{c}"] for c in "NSVFQ") - 1) < 1e-4 for r in rows)
    with pytest.raises(TypeError):  # given rr as well, the waveform-only model refuses it
        predict_record(TinyWave(), None, data_dir / "mitdb" / "100", {"lead": "MLII"},
                       max_duration_s=30.0)  # fmt: skip


@pytest.mark.realdata
@pytest.mark.parametrize("detector", ["gqrs", "xqrs"])
def test_detector_fallback_agrees_with_reference(
    data_dir: Path, rec100_no_atr: Path, detector: str
) -> None:
    rows, _ = predict_record(TinyBeat(), None, rec100_no_atr, {"lead": "MLII"},
                             max_duration_s=60.0, detector=detector)  # fmt: skip
    assert {r["source"] for r in rows} == {detector}
    from medtorch.data.sources.wfdb_reader import read_annotations

    ann = read_annotations(data_dir / "mitdb" / "100")
    ref = ann.sample[np.isin(ann.symbol, list(BEAT_SYMBOLS)) & (ann.sample < 60 * 360)]
    found = np.array([r["sample"] for r in rows])
    # beats whose window runs off the 60 s crop are skipped: compare inside the crop
    ref = ref[(ref >= 90) & (ref + 162 <= 60 * 360)]
    dist = np.abs(ref[:, None] - found[None, :]).min(axis=1)
    assert (dist <= 36).mean() > 0.95  # within 100 ms at 360 Hz
    # at the R peak, where the classifier's training windows are centred (gqrs alone marks
    # the QRS onset, ~13 samples early)
    assert np.median(dist) <= 2


def test_detect_beats_bad_input() -> None:
    assert detect_beats(np.full(3600, 0.5), 360.0).tolist() == []  # flat: no beats
    lead = np.sin(np.arange(3600) / 20.0)
    lead[100] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        detect_beats(lead, 360.0)
    with pytest.raises(ConfigError, match="gqrs or xqrs"):
        detect_beats(np.zeros(10), 360.0, "pan_tompkins")
    assert DETECTORS == ("gqrs", "xqrs")  # the CLI's --detector choices, written out there


@pytest.mark.realdata
def test_predict_record_to_csv(data_dir: Path, tmp_path: Path) -> None:
    cfg = SimpleNamespace(task=SimpleNamespace(name="mitdb_aami_beats", params={"records": ["1"]}))
    norm = SimpleNamespace(transform=lambda x: x)
    msg = predict_record_to_csv(cfg, TinyBeat(), norm, list("NSVFQ"), data_dir / "mitdb" / "100",
                                tmp_path / "out.csv")  # fmt: skip
    assert "2271 beat predictions" in msg and "annotations" in msg
    cfg.task = SimpleNamespace(name="mitdb_af_windows", params={"window_s": 10.0})
    msg = predict_record_to_csv(cfg, AlwaysAF(), norm, ["other", "af"], data_dir / "mitdb" / "100",
                                tmp_path / "af.csv")  # fmt: skip
    assert "180 windows" in msg and (tmp_path / "af.episodes.csv").is_file()

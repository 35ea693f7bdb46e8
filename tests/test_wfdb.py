"""WFDB reader (real record 100 and damaged copies of it) and signal filters (synthetic)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medtorch.data.signal import bandpass, notch, remove_baseline, resample
from medtorch.data.sources.wfdb_reader import read_annotations, read_record
from medtorch.errors import ConfigError, RecordError

FS = 360.0


def _t(seconds: float = 20.0, fs_hz: float = FS) -> np.ndarray:
    return np.arange(int(seconds * fs_hz)) / fs_hz


def _amp(x: np.ndarray, f_hz: float, fs_hz: float = FS) -> float:
    """Amplitude of the f_hz component (least squares on sin/cos), edges trimmed."""
    t = np.arange(len(x)) / fs_hz
    basis = np.stack([np.sin(2 * np.pi * f_hz * t), np.cos(2 * np.pi * f_hz * t)], 1)
    coef = np.linalg.lstsq(basis, x, rcond=None)[0]
    return float(np.hypot(*coef))


def test_notch_removes_60hz_keeps_10hz() -> None:
    t = _t()
    x = (np.sin(2 * np.pi * 10 * t) + 0.5 * np.sin(2 * np.pi * 60 * t)).astype(np.float32)
    y = notch(x, fs_hz=FS, freq_hz=60.0)
    assert y.dtype == np.float32
    assert _amp(y[720:-720], 60) < 0.01
    assert abs(_amp(y[720:-720], 10) - 1.0) < 0.03


def test_remove_baseline_removes_drift_keeps_10hz() -> None:
    t = _t(60.0)
    x = np.sin(2 * np.pi * 10 * t) + 2.0 * np.sin(2 * np.pi * 0.1 * t)
    y = remove_baseline(x, fs_hz=FS, cutoff_hz=0.5)
    core = y[3600:-3600]
    assert _amp(core, 0.1) < 0.02  # 2.0 -> < 1 %
    assert abs(_amp(core, 10) - 1.0) < 0.03


def test_bandpass_and_resample() -> None:
    t = _t()
    x = np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 100 * t)
    y = bandpass(x, FS, 0.5, 40.0, order=4)
    assert _amp(y[720:-720], 100) < 0.01 and abs(_amp(y[720:-720], 10) - 1) < 0.03
    z = resample(np.sin(2 * np.pi * 5 * t).astype(np.float32), FS, 125.0)
    assert z.shape == (len(t) * 125 // 360,) and z.dtype == np.float32
    assert abs(_amp(z[250:-250], 5, 125.0) - 1.0) < 0.02
    with pytest.raises(ConfigError, match="Nyquist"):
        notch(x, fs_hz=100.0, freq_hz=60.0)


# ---- real record and damaged copies -------------------------------------------------


@pytest.fixture
def rec100(data_dir: Path, tmp_path: Path) -> Path:
    for ext in ("hea", "dat", "atr"):
        shutil.copy(data_dir / "mitdb" / f"100.{ext}", tmp_path / f"100.{ext}")
    return tmp_path / "100"


def _edit_header(stem: Path, old: str, new: str, line: int | None = None) -> None:
    hea = Path(f"{stem}.hea")
    lines = hea.read_text().splitlines()
    idx = range(len(lines)) if line is None else [line]
    for i in idx:
        lines[i] = lines[i].replace(old, new)
    hea.write_text("\n".join(lines) + "\n")


@pytest.mark.realdata
def test_read_record_100(rec100: Path) -> None:
    rec = read_record(rec100)
    assert rec.signal.shape == (2, 650000) and rec.signal.dtype == np.float32
    assert rec.fs_hz == 360.0 and rec.sig_names == ["MLII", "V5"] and rec.units == ["mV", "mV"]
    # first samples 995, 1011 adu, baseline 1024, gain 200 adu/mV (100.hea)
    np.testing.assert_allclose(rec.signal[:, 0], [(995 - 1024) / 200, (1011 - 1024) / 200])
    one = read_record(rec100, channels=["V5"], target_fs_hz=125.0)
    assert one.sig_names == ["V5"] and one.signal.shape == (1, -(-650000 * 125 // 360))
    ann = read_annotations(rec100, fs_hz=rec.fs_hz)
    beats = np.isin(ann.symbol, list("NLRBAaJSVrFejnE/fQ?"))
    assert beats.sum() == 2273
    with pytest.raises(RecordError, match="channel"):
        read_record(rec100, channels=["V1"])


@pytest.mark.realdata
def test_truncated_dat(rec100: Path) -> None:
    dat = Path(f"{rec100}.dat")
    dat.write_bytes(dat.read_bytes()[:1_900_000])
    with pytest.raises(RecordError, match="truncated") as err:
        read_record(rec100)
    assert "100.dat" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.realdata
def test_header_sample_count_disagrees(rec100: Path) -> None:
    _edit_header(rec100, "650000", "640000", line=0)
    with pytest.raises(RecordError, match="sample count disagrees"):
        read_record(rec100)


@pytest.mark.realdata
def test_header_checksum_disagrees(rec100: Path) -> None:
    _edit_header(rec100, "-22131", "-22130", line=1)
    with pytest.raises(RecordError, match=r"checksum -22130.*'MLII'.*got -22131"):
        read_record(rec100)
    assert read_record(rec100, verify_checksum=False).n_samples == 650000


@pytest.mark.realdata
def test_missing_annotation_file(rec100: Path) -> None:
    Path(f"{rec100}.atr").unlink()
    with pytest.raises(RecordError, match=r"100\.atr"):
        read_annotations(rec100)


@pytest.mark.realdata
@pytest.mark.parametrize("bad_fs", ["0", "-360", "abc"])
def test_invalid_sampling_rate(rec100: Path, bad_fs: str) -> None:
    _edit_header(rec100, "100 2 360 ", f"100 2 {bad_fs} ", line=0)
    with pytest.raises(RecordError, match="sampling rate"):
        read_record(rec100)


@pytest.mark.realdata
def test_missing_header(rec100: Path) -> None:
    Path(f"{rec100}.hea").unlink()
    with pytest.raises(RecordError, match=r"100\.hea"):
        read_record(rec100)


@pytest.mark.realdata
def test_missing_dat(rec100: Path) -> None:
    Path(f"{rec100}.dat").unlink()
    with pytest.raises(RecordError, match=r"100\.dat"):
        read_record(rec100)


def test_format16_record(tmp_path: Path, rng: np.random.Generator) -> None:
    """A 3-channel format-16 record written by wfdb, read back with channel selection."""
    import wfdb

    d = rng.integers(-500, 500, size=(1000, 3)).astype(np.int32)
    wfdb.wrsamp(
        "syn",
        fs=250,
        units=["mV"] * 3,
        sig_name=["I", "II", "III"],
        d_signal=d,
        fmt=["16"] * 3,
        adc_gain=[100.0] * 3,
        baseline=[0] * 3,
        write_dir=str(tmp_path),
    )
    rec = read_record(tmp_path / "syn", channels=["II", 2])
    assert rec.fs_hz == 250.0 and rec.sig_names == ["II", "III"]
    np.testing.assert_allclose(rec.signal, d[:, 1:].T / 100.0, atol=1e-6)

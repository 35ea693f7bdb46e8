"""MIT-BIH tasks: AAMI mapping, RR features, beat windows, DS1/DS2 protocol, AF windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medtorch.config import SplitConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.data.splits import make_split
from medtorch.data.tasks.mitdb import mitdb_aami_beats, mitdb_af_windows
from medtorch.ecg.af import af_indicator, af_rr_features
from medtorch.ecg.beats import AAMI_CLASSES, AAMI_MAP, beat_inputs
from medtorch.ecg.features import MORPH_FEATURES, N_PATIENT_RR, patient_relative, rr_features
from medtorch.ecg.records import DS1, DS2, PACED
from medtorch.errors import ConfigError, SplitError


def test_aami_mapping() -> None:
    # de Chazal's Table I, plus B and n (N) and r (V) of other PhysioNet databases
    expected = {"N": "NLRBejn", "S": "AaJS", "V": "VrE", "F": "F", "Q": "/fQ"}
    assert {c: "".join(s for s, k in AAMI_MAP.items() if k == c) for c in AAMI_CLASSES} == expected
    for non_beat in '+~|!x[]"':
        assert non_beat not in AAMI_MAP
    assert not set(DS1) & set(DS2) and not set(PACED) & (set(DS1) | set(DS2))
    assert len(DS1) == len(DS2) == 22


def test_rr_features_synthetic() -> None:
    fs = 100.0
    samples = np.array([0, 100, 200, 350, 450, 550])  # RR: 1.0 1.0 1.5 1.0 1.0 s
    rr = rr_features(samples, fs, n_local=3)
    np.testing.assert_allclose(rr[:, 0], [1.0, 1.0, 1.0, 1.5, 1.0, 1.0])  # previous
    np.testing.assert_allclose(rr[:, 1], [1.0, 1.0, 1.5, 1.0, 1.0, 1.0])  # next
    # local: mean of the previous RR of the last 3 beats (fewer at the start)
    np.testing.assert_allclose(rr[:, 2], [1.0, 1.0, 1.0, 7 / 6, 7 / 6, 7 / 6], rtol=1e-6)
    np.testing.assert_allclose(rr[:, 3], 5.5 / 5)
    assert rr.dtype == np.float32 and rr_features(np.array([5]), fs).shape == (1, 4)


def test_beat_inputs_windows_and_edges() -> None:
    lead = np.arange(1000, dtype=np.float32)
    x, rr, kept = beat_inputs(lead, 100.0, np.array([5, 100, 500, 990]), (0.1, 0.2))
    assert kept.tolist() == [1, 2]  # 5 and 990 run off the edges
    assert x.shape == (2, 1, 30) and x[0, 0, 10] == 100 and x[1, 0, 0] == 490
    np.testing.assert_allclose(rr[:, 0], [0.95, 4.0])  # RR uses the dropped beats too
    with pytest.raises(ConfigError, match="window_s"):
        beat_inputs(lead, 100.0, np.array([5]), (0.1,))


def test_af_indicator() -> None:
    sym = np.array(["+", "N", "+", "N", "+"])
    smp = np.array([0, 10, 20, 30, 60])
    aux = np.array(["(N", "", "(AFIB", "", "(N"])
    af = af_indicator(sym, smp, aux, 100)
    assert af.sum() == 40 and af[20:60].all()


def test_ds1_ds2_protocol_synthetic() -> None:
    recs = list(DS1) + list(DS2)
    groups = np.repeat(recs, 10)
    y = np.tile(np.arange(10) % 5, len(recs))
    ds = ArrayDataset({"x": np.zeros((len(y), 1, 4), np.float32)}, y, groups, AAMI_CLASSES)
    split = make_split(ds, SplitConfig(method="protocol", protocol="mitdb_ds1_ds2", seed=1))
    parts = {k: set(groups[v]) for k, v in split.items()}
    assert parts["test"] == set(DS2)
    assert parts["valid"] <= set(DS1) and len(parts["valid"]) == 4
    assert parts["train"] == set(DS1) - parts["valid"]
    again = make_split(ds, SplitConfig(method="protocol", protocol="mitdb_ds1_ds2", seed=1))
    assert all((again[k] == split[k]).all() for k in split)  # the seed fixes the draw
    chosen = make_split(ds, SplitConfig(method="protocol", protocol="mitdb_ds1_ds2",
                                        params={"valid_groups": ["108", "112"]}))  # fmt: skip
    assert set(groups[chosen["valid"]]) == {"108", "112"}
    assert set(groups[chosen["train"]]) == set(DS1) - {"108", "112"}
    with pytest.raises(SplitError, match="valid_groups=null"):  # not silently ignored
        make_split(ds, SplitConfig(method="random", params={"valid_groups": ["108"]}))
    for bad in (["100"], ["108", "100"], []):  # DS2 records would leak the test set
        with pytest.raises(SplitError, match=r"split\.params\.valid_groups"):
            make_split(ds, SplitConfig(method="protocol", protocol="mitdb_ds1_ds2",
                                       params={"valid_groups": bad}))  # fmt: skip


@pytest.mark.realdata
def test_record_100_beat_counts(data_dir: Path) -> None:
    ds = mitdb_aami_beats(data_dir, records=["100"])
    # published: 2,273 beats = N 2239, A 33, V 1; two N beats lie within 0.45 s of the end
    c = ds.meta["cohort"]
    assert c["beats_read"] == 2273 and c["dropped_window_off_edge"] == 2
    assert ds.class_counts() == {"N": 2237, "S": 33, "V": 1, "F": 0, "Q": 0}
    assert ds.inputs["x"].shape == (2271, 1, 252) and ds.inputs["rr"].shape == (2271, 4)
    assert ds.sample_ids is not None and ds.sample_ids[0].startswith("100:")
    # the window is centred so the R peak sits at sample 90 (0.25 s at 360 Hz)
    x = ds.inputs["x"][:, 0]
    assert np.median(np.abs(x).argmax(axis=1)) == pytest.approx(90, abs=3)
    assert 0.6 < float(ds.inputs["rr"][:, 3].mean()) < 1.0  # ~75 bpm


def test_patient_relative_is_per_record_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(-1, 1, 60)
    normal = np.exp(-((t / 0.05) ** 2))  # a narrow R wave
    x = normal[None, None, :] + 0.01 * rng.standard_normal((50, 1, 60))
    x[7, 0] = -2.0 * np.exp(-((t / 0.3) ** 2))  # one wide, inverted (ventricular-like) beat
    samples = np.cumsum(np.full(50, 300))
    samples[20] -= 120  # one premature beat
    rr = rr_features(samples, 360.0)
    xp, rp = patient_relative(x, rr)
    xs, rs = patient_relative(5.0 * x + 3.0, rr)  # gain and offset of another recorder
    np.testing.assert_allclose(xs, xp, atol=1e-4)
    np.testing.assert_allclose(rs, rp)
    energy = np.abs(xp[:, 1]).mean(axis=1)  # distance from the record's median beat
    assert energy.argmax() == 7 and energy[7] > 20 * np.median(energy)
    assert rp[20, 4] < -0.4 and rp[20, 3] < -0.8  # premature vs context and vs next RR
    assert np.abs(rp[45:49, :6]).max() < 1e-6  # regular beats (20 past beat 20) sit at 0
    np.testing.assert_allclose(rp[:, 6], rp[:, 6].clip(0))  # irregularity is >= 0
    # the rhythm strip: column 7 + 8 + j is the previous RR of beat i + j over the record mean
    np.testing.assert_allclose(rp[12:28, 15], rp[12:28, 0])
    np.testing.assert_allclose(rp[18, 7 + 8 + 2], rp[20, 0])
    np.testing.assert_allclose(rp[0, 7:15], rp[0, 0])  # clipped at the record start


@pytest.mark.realdata
def test_patient_norm_on_record_119(data_dir: Path) -> None:
    # 119: ventricular bigeminy/trigeminy, N 1,543 and V 444 beats
    ds = mitdb_aami_beats(data_dir, records=["119"], fs_hz=180.0, patient_norm=True)
    assert ds.inputs["x"].shape[1] == 2 and ds.inputs["rr"].shape[1] == 24
    assert ds.meta["patient_norm"] and len(ds.meta["rr_features"]) == 24
    dist = np.abs(ds.inputs["x"][:, 1]).mean(axis=1)
    n, v = ds.y == 0, ds.y == 2
    assert np.median(dist[v]) > 4 * np.median(dist[n])
    assert abs(float(np.median(ds.inputs["rr"][n, 0]))) < 0.15  # N beats near the record's RR


@pytest.mark.realdata
@pytest.mark.slow
def test_full_extraction_and_protocol(data_dir: Path) -> None:
    ds = mitdb_aami_beats(data_dir)
    c = ds.meta["cohort"]
    assert c["records"] == 44 and c["records_paced_excluded"] == 4
    assert set(np.unique(ds.groups)) == set(DS1) | set(DS2)
    ds1, ds2 = np.isin(ds.groups, DS1), np.isin(ds.groups, DS2)
    # de Chazal et al. 2004 report ~51k (DS1) and ~49.7k (DS2) beats
    assert ds1.sum() == 51002 and ds2.sum() == 49692
    assert np.bincount(ds.y[ds1], minlength=5).tolist() == [45848, 944, 3788, 414, 8]
    assert np.bincount(ds.y[ds2], minlength=5).tolist() == [44240, 1837, 3220, 388, 7]
    split = make_split(ds, SplitConfig(method="protocol", protocol="mitdb_ds1_ds2"))
    parts = {k: set(ds.groups[v]) for k, v in split.items()}
    assert parts["test"] == set(DS2) and parts["valid"] <= set(DS1)
    assert not parts["train"] & parts["valid"] and not parts["train"] & parts["test"]
    assert {1, 2} <= set(ds.y[split["valid"]].tolist())  # valid holds S and V beats
    assert "optimistic" in ds.meta["intra_patient_warning"]


@pytest.mark.realdata
def test_af_windows(data_dir: Path) -> None:
    ds = mitdb_af_windows(data_dir, records=["100", "201", "203"])
    assert ds.class_names == ["other", "af"] and ds.inputs["x"].shape[1:] == (1, 1250)
    per = ds.meta["af_windows_per_record"]
    assert per.get("201", 0) > 0 and per.get("203", 0) > 0 and "100" not in per
    assert (ds.y[ds.groups == "100"] == 0).all() and len(ds) == 3 * 180


def test_af_rr_features_regular_irregular_and_empty() -> None:
    rng = np.random.default_rng(1)
    fs, n_win = 100.0, 1000  # 10 s windows
    regular = np.arange(0, 1000, 80)  # 0.8 s, perfectly regular
    chaotic = 1000 + np.cumsum(rng.uniform(40, 110, 14)).astype(int)  # AF-like, 0.4-1.1 s
    beats = np.concatenate([regular, chaotic[chaotic < 2000], [2500, 2990]])  # then a pause
    f = af_rr_features(beats, fs, np.array([0, 1000, 2000]), n_win)
    assert f.shape == (3, 8) and f.dtype == np.float32
    np.testing.assert_allclose(f[0, 2:7], 0.0, atol=1e-6)  # no spread in the regular window
    assert f[0, 0] == pytest.approx(len(regular) / 10.0) and f[0, 7] == 1.0
    assert f[1, 2] > 0.15 and f[1, 5] > 0.5 and f[1, 7] == 1.0  # irregularly irregular
    assert f[2, 7] == 0.0 and f[2, 0] == pytest.approx(0.2)  # 2 beats: spreads undefined


def test_af_windows_need_some_input() -> None:
    with pytest.raises(ConfigError, match=r"task\.params\.rr=true"):
        mitdb_af_windows(None, waveform=False, rr=False)


def test_train_exclude_ids_leave_training_only() -> None:
    recs = list(DS1) + list(DS2)
    groups = np.repeat(recs, 10)
    y = np.tile(np.arange(10) % 5, len(recs))
    ids = np.array([f"{g}:{i}" for i, g in enumerate(groups)])
    held = [ids[0], ids[1], ids[-1]]  # two DS1 beats (train or valid) and one DS2 beat
    ds = ArrayDataset({"x": np.zeros((len(y), 1, 4), np.float32)}, y, groups, AAMI_CLASSES,
                      sample_ids=ids, meta={"train_exclude_ids": held})  # fmt: skip
    plain = ArrayDataset(ds.inputs, y, groups, AAMI_CLASSES, sample_ids=ids)
    cfg = SplitConfig(method="protocol", protocol="mitdb_ds1_ds2", params={"valid_groups": ["108"]})
    a, b = make_split(ds, cfg), make_split(plain, cfg)
    assert not set(ids[a["train"]]) & set(held)
    assert set(ids[b["train"]]) - set(ids[a["train"]]) == set(held) & set(ids[b["train"]])
    assert (a["valid"] == b["valid"]).all() and (a["test"] == b["test"]).all()  # still scored


@pytest.mark.realdata
def test_af_beats_can_be_left_out_of_training(data_dir: Path) -> None:
    ds = mitdb_aami_beats(data_dir, records=["201", "100"], fs_hz=180.0, train_on_af_beats=False)
    held = ds.meta["train_exclude_ids"]
    assert ds.meta["cohort"]["beats_in_af_rhythm"] == len(held) > 300  # 201's AF episodes
    assert all(h.startswith("201:") for h in held)  # record 100 has no AF
    keep = mitdb_aami_beats(data_dir, records=["100"], fs_hz=180.0)
    assert "train_exclude_ids" not in keep.meta


@pytest.mark.realdata
def test_morph_features_on_record_209(data_dir: Path) -> None:
    # 209: 383 atrial premature beats among 2,621 normal ones
    ds = mitdb_aami_beats(data_dir, records=["209"], fs_hz=180.0, patient_norm=True,
                          morph_features=True)  # fmt: skip
    rr = ds.inputs["rr"]
    assert rr.shape[1] == N_PATIENT_RR + len(MORPH_FEATURES)
    assert ds.meta["rr_features"][N_PATIENT_RR:] == MORPH_FEATURES
    plain = mitdb_aami_beats(data_dir, records=["209"], fs_hz=180.0, patient_norm=True)
    np.testing.assert_array_equal(rr[:, :N_PATIENT_RR], plain.inputs["rr"])  # appended only
    z_p_rms = rr[:, N_PATIENT_RR + MORPH_FEATURES.index("z_p_rms")]
    n, s = ds.y == 0, ds.y == 1
    assert abs(float(np.median(z_p_rms[n]))) < 0.5  # the record's own P wave, z near 0
    assert float(np.median(z_p_rms[s])) > 2.0  # an APC's P region departs from it


def test_morph_features_need_patient_norm_and_a_wide_window() -> None:
    lead = np.sin(np.arange(3600) / 20.0)
    beats = np.arange(200, 3400, 150)
    with pytest.raises(ConfigError, match=r"task\.params\.patient_norm"):
        beat_inputs(lead, 180.0, beats, (0.25, 0.45), patient_norm=False, morph_features=True)
    with pytest.raises(ConfigError, match=r"task\.params\.window_s"):
        beat_inputs(lead, 180.0, beats, (0.1, 0.45), patient_norm=True, morph_features=True)
    _, rr, kept = beat_inputs(lead, 180.0, beats, (0.25, 0.45), True, True)
    assert rr.shape == (len(kept), N_PATIENT_RR + len(MORPH_FEATURES)) and np.isfinite(rr).all()


@pytest.mark.realdata
def test_morph_reference_on_time_where_premature_beats_are_the_majority(data_dir: Path) -> None:
    # 232: 1,382 atrial premature beats, 398 normal beats (after long pauses). Against the
    # median of all beats (an APC) the APCs look usual; against the on-time beats they do not.
    i = N_PATIENT_RR + MORPH_FEATURES.index("z_p_rms")
    z = {}
    for ref in ("all", "on_time"):
        ds = mitdb_aami_beats(data_dir, records=["232"], fs_hz=180.0, patient_norm=True,
                              morph_features=True, morph_reference=ref)  # fmt: skip
        assert ds.meta["morph_reference"] == ref
        z[ref] = {
            c: float(np.median(ds.inputs["rr"][ds.y == k, i])) for c, k in (("N", 0), ("S", 1))
        }
    assert abs(z["all"]["S"]) < 0.5 and z["all"]["N"] > 2.0  # the normal beats look odd
    assert z["on_time"]["S"] > 2.0 and abs(z["on_time"]["N"]) < 0.5


def test_morph_reference_must_be_known() -> None:
    lead = np.sin(np.arange(3600) / 20.0)
    with pytest.raises(ConfigError, match=r"task\.params\.morph_reference"):
        beat_inputs(lead, 180.0, np.arange(200, 3400, 150), (0.25, 0.45), True, True, "sinus")

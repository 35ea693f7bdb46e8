"""ECG end to end through the CLI: train on a few MIT-BIH records, predict a record, export ONNX.

Small and fast on purpose (a few records, one epoch, a tiny network): it checks the wiring
(run folder, AAMI metrics, per-beat CSV with its beat source, AF windows, ONNX parity), not
accuracy. Prediction without annotations runs XQRS on a 2-minute copy of record 201 that
has no ``.atr`` file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medtorch.cli import main
from medtorch.ecg.features import MORPH_FEATURES

pytestmark = pytest.mark.realdata

TINY = ["--set", "model.params={base_filters: 4, n_blocks: 2, kernel_size: 5}",
        "--set", "trainer.max_epochs=1", "--set", "trainer.num_threads=1",
        "--set", "trainer.progress=false", "--set", "eval.n_bootstrap=20"]  # fmt: skip


# the recipe's gate columns: 7 RR features and the 6 beat-shape ones (morph_features)
GATE_COLUMNS = [0, 1, 2, 3, 4, 5, 6, 24, 25, 26, 27, 28, 29]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _train(data_dir: Path, out: Path, recipe: str, *overrides: str) -> Path:
    sets = [a for o in overrides for a in ("--set", o)]
    assert (
        main(["--data-dir", str(data_dir), "train", recipe, "--out", str(out), *TINY, *sets]) == 0
    )
    (run,) = out.iterdir()
    return run


def _unannotated_copy(data_dir: Path, dest: Path, seconds: float = 120.0) -> Path:
    """The first ``seconds`` of record 201 written as a new WFDB record without annotations."""
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "201"), sampto=round(seconds * 360))
    wfdb.wrsamp("r201", fs=rec.fs, units=rec.units, sig_name=rec.sig_name,
                p_signal=rec.p_signal, fmt=["16"] * rec.n_sig, write_dir=str(dest))  # fmt: skip
    assert not (dest / "r201.atr").exists()
    return dest / "r201"


def _resampled_copy(
    data_dir: Path, dest: Path, fs: float, names: list[str], minutes: float = 10
) -> Path:
    """The first ``minutes`` of record 100 (MLII, V5) with its beat annotations, written at
    ``fs`` Hz with leads renamed ``names``: how another database (INCART: 257 Hz, lead II)
    presents the same heart."""
    import wfdb
    from scipy.signal import resample_poly

    rec = wfdb.rdrecord(str(data_dir / "mitdb" / "100"), sampto=round(minutes * 60 * 360))
    ann = wfdb.rdann(str(data_dir / "mitdb" / "100"), "atr", sampto=rec.sig_len - 1)
    sig = rec.p_signal if fs == 360 else resample_poly(rec.p_signal, round(fs), 360, axis=0)
    name = f"c{round(fs)}"
    wfdb.wrsamp(name, fs=fs, units=rec.units, sig_name=names, p_signal=sig,
                fmt=["16"] * rec.n_sig, write_dir=str(dest))  # fmt: skip
    sample = np.round(ann.sample * fs / 360).astype(np.int64)
    wfdb.wrann(name, "atr", sample, symbol=ann.symbol, fs=fs, write_dir=str(dest))
    return dest / name


def test_beats_train_predict_both_sources_and_export(
    data_dir: Path, tmp_path: Path, capsys
) -> None:
    run = _train(data_dir, tmp_path / "runs", "mitdb_aami_resnet1d",
                 "task.params.records=[101, 106, 112, 100, 105]",
                 "split.params.valid_groups=[112]", "model.params.rr_net_features=24",
                 f"model.params.rr_gate_features={GATE_COLUMNS}",
                 "model.params.rr_gate_method=trees", "model.params.rr_gate_min_ppv=0.5",
                 "model.params.after_training_on=train+valid")  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    aami = metrics["test"]["aami"]
    # the RR gate was fitted on the N and S beats of the training and validation records
    # (model.params.after_training_on as in the recipe; 101: 3 APCs, 112: 2), never the test ones,
    # and is in the checkpoint that predict and export load below; its operating point
    # (rr_gate_min_ppv, as in the recipe) was cross-validated leaving one of 3 records out
    stage2 = metrics["after_training"]
    assert stage2["fitted_on"] == "train+valid"
    assert stage2["n_beats"]["1"] == 3 + 2
    assert stage2["n_beats"]["0"] > 3000 + 1500
    assert stage2["features"] == GATE_COLUMNS and stage2["feature_names"][7:] == MORPH_FEATURES
    spec = json.loads((run / "model.json").read_text())
    assert spec["hints"]["n_rr"] == 30  # 24 RR + 6 shape features, the network reads 24
    point = stage2["operating_point"]
    assert point["min_ppv"] == 0.5 and point["cv"] == "3 group folds (one group each)"
    assert set(aami["per_class"]) == {"N", "S", "V", "F", "Q"} and "cohen_kappa" in aami["overall"]
    html = (run / "report.html").read_text()
    assert (
        "AAMI heartbeat classes" in html
        and "second stage (fitted after training, on the train+valid split(s)" in html
        and "Operating point: the most sensitive threshold" in html
    )

    out = tmp_path / "201.csv"
    assert main(["predict", str(run), str(data_dir / "mitdb" / "201"), "--out", str(out)]) == 0
    assert "beats from annotations" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) > 1900 and {r["source"] for r in rows} == {"annotations"}
    assert {"sample", "predicted", "p_N", "p_V", "ref_class"} <= set(rows[0])

    # predict builds exactly the training inputs (patient-relative ones included): its
    # probabilities for test record 100 match the run's own test predictions
    out100 = tmp_path / "100.csv"
    assert main(["predict", str(run), str(data_dir / "mitdb" / "100"), "--out", str(out100)]) == 0
    pred = {f"100:{r['sample']}": float(r["p_N"]) for r in _rows(out100)}
    ref = {r["sample_id"]: float(r["p_N"]) for r in _rows(run / "predictions_test.csv")
           if r["group"] == "100"}  # fmt: skip
    assert len(ref) > 2000 and ref.keys() <= pred.keys()
    assert max(abs(pred[k] - v) for k, v in ref.items()) < 1e-4

    # ecg-score on the run's test records, at the annotated beats, gives back the run's own
    # test confusion matrix; with --detect (XQRS) it matches detections to the reference
    mit = data_dir / "mitdb"
    js = tmp_path / "score.json"
    argv = ["ecg-score", str(run), str(mit / "100"), str(mit / "105"), "--out", str(js),
            "--n-bootstrap", "20"]  # fmt: skip
    assert main(argv) == 0 and "2 records" in capsys.readouterr().out
    scored = json.loads(js.read_text())
    assert scored["aami"]["confusion_matrix"] == aami["confusion_matrix"]
    assert scored["aami"]["n_groups"] == 2 and scored["beats_from"] == "annotations"
    assert main([*argv[:3], "--detect", "--out", str(js), "--n-bootstrap", "20"]) == 0
    det = json.loads(js.read_text())
    d, cm = det["aami"]["detection"], np.array(det["aami"]["confusion_matrix"])
    assert det["aami"]["class_names"][-1] == "none" and cm.shape == (6, 6)
    assert cm[:, -1].sum() == d["missed"] and cm[-1].sum() == d["extra"]  # misses / extras
    assert d["reference_beats"] > 2200 and d["Se"] > 0.99 and d["+P"] > 0.99  # XQRS on 100
    assert det["per_record"]["100"]["S"]["reference"] == 33  # record 100's 33 APCs
    # --lead picks another lead; a lead the record lacks is one line naming the header
    assert main([*argv[:3], "--lead", "V5", "--out", str(js), "--n-bootstrap", "0"]) == 0
    assert json.loads(js.read_text())["per_record"]["100"]["lead"] == "V5"
    v5 = tmp_path / "100_v5.csv"
    assert main(["predict", str(run), str(mit / "100"), "--lead", "V5", "--out", str(v5)]) == 0
    assert {r["lead"] for r in _rows(v5)} == {"V5"}
    capsys.readouterr()
    assert main([*argv[:3], "--lead", "II", "--out", str(js)]) == 2
    err = capsys.readouterr().err
    assert "100.hea" in err and "'II'" in err and len(err.strip().splitlines()) == 1

    # the same 10 minutes as another database would store them (257 Hz, lead "II"): with
    # --lead II the run scores them as it scores the MIT-BIH copy, up to resampling
    (tmp_path / "db").mkdir()
    native = _resampled_copy(data_dir, tmp_path / "db", 360, ["MLII", "V5"])
    other = _resampled_copy(data_dir, tmp_path / "db", 257, ["II", "V5"])
    cms = []
    for stem_, lead in ((native, "MLII"), (other, "II")):
        argv = ["ecg-score", str(run), str(stem_), "--lead", lead, "--out", str(js),
                "--n-bootstrap", "0"]  # fmt: skip
        assert main(argv) == 0
        cms.append(np.array(json.loads(js.read_text())["aami"]["confusion_matrix"]))
    assert cms[0].sum() == cms[1].sum() > 700  # every annotated beat, at either rate
    assert cms[1][1, 1] > 0  # its APCs are found at 257 Hz too
    assert np.abs(cms[0] - cms[1]).sum() <= 0.02 * cms[0].sum()

    # messy records: a flat lead (its 2 annotated beats are missed, not dropped) and a
    # record whose annotations mark no beat (nothing to score: one line, exit 2)
    import wfdb

    for name, sample, symbol in (("flat", [3600, 7200], ["N", "N"]), ("nobeats", [10], ["+"])):
        wfdb.wrsamp(
            name,
            fs=360,
            units=["mV", "mV"],
            sig_name=["MLII", "V5"],
            p_signal=np.zeros((360 * 60, 2)),
            fmt=["16", "16"],
            write_dir=str(tmp_path),
        )
        wfdb.wrann(name, "atr", np.array(sample), symbol=symbol, fs=360, write_dir=str(tmp_path))  # fmt: skip
    argv = ["ecg-score", str(run), str(tmp_path / "flat"), "--detect", "--out", str(js)]
    assert main(argv) == 0
    d = json.loads(js.read_text())["aami"]["detection"]
    assert (d["missed"], d["Se"], d["+P"]) == (2, 0.0, None)
    assert main(["ecg-score", str(run), str(tmp_path / "nobeats"), "--out", str(js)]) == 2
    assert "beat annotations to score" in capsys.readouterr().err

    stem = _unannotated_copy(data_dir, tmp_path)
    # scoring needs reference annotations: a record without them is refused
    assert main(["ecg-score", str(run), str(stem), "--out", str(js)]) == 2
    assert "r201" in capsys.readouterr().err
    out2 = tmp_path / "r201.csv"
    assert main(["predict", str(run), str(stem), "--out", str(out2)]) == 0
    assert "beats from gqrs" in capsys.readouterr().out  # the default detector
    rows2 = _rows(out2)
    assert 100 < len(rows2) < 400 and {r["source"] for r in rows2} == {"gqrs"}
    assert main(["predict", str(run), str(stem), "--detector", "xqrs", "--out", str(out2)]) == 0
    assert {r["source"] for r in _rows(out2)} == {"xqrs"}

    onnx = tmp_path / "model.onnx"
    argv = ["--data-dir", str(data_dir), "export", str(run), "--out", str(onnx), "--n-check", "64"]
    assert main(argv) == 0
    assert "max abs diff" in capsys.readouterr().out and onnx.stat().st_size > 0


def test_af_train_and_predict_windows(data_dir: Path, tmp_path: Path, capsys) -> None:
    run = _train(data_dir, tmp_path / "runs", "mitdb_af_resnet1d",
                 "task.params.records=[201, 100, 203, 101, 210, 105]", "split.n_folds=3")  # fmt: skip
    assert "f1" in json.loads((run / "metrics.json").read_text())["test"]["per_class"]["af"]
    out = tmp_path / "af.csv"
    assert (
        main(["predict", str(run), str(_unannotated_copy(data_dir, tmp_path)), "--out", str(out)])
        == 0
    )
    assert "AF episodes" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 12 and {"start_s", "p_af", "predicted"} <= set(rows[0])
    assert out.with_suffix(".episodes.csv").is_file()


@pytest.mark.parametrize(
    ("recipe", "extra", "inputs"),
    [("mitdb_af_resnet1d", ["task.params.rr=true", "model.name=hannun_resnet1d_rr"], ["x", "rr"]),
     ("mitdb_af_rr_mlp", ["model.params={hidden: [8]}"], ["x"])],
)  # fmt: skip
def test_af_with_rr_features_predicts_from_annotations_or_a_detector(
    data_dir: Path, tmp_path: Path, capsys, recipe: str, extra: list[str], inputs: list[str]
) -> None:
    run = _train(data_dir, tmp_path / "runs", recipe,
                 "task.params.records=[201, 100, 203, 101, 210, 105]", "split.n_folds=3",
                 *extra)  # fmt: skip
    spec = json.loads((run / "model.json").read_text())
    assert spec["inputs"] == inputs
    # predict rebuilds the training inputs: same probabilities as the run's own test rows
    test_records = {r["group"] for r in _rows(run / "predictions_test.csv")}
    rec = sorted(test_records)[0]
    out = tmp_path / "af_ann.csv"
    assert main(["predict", str(run), str(data_dir / "mitdb" / rec), "--out", str(out)]) == 0
    rows = _rows(out)
    assert {r["beats_source"] for r in rows} == {"annotations"}
    ref = {r["sample_id"]: float(r["p_af"]) for r in _rows(run / "predictions_test.csv")
           if r["group"] == rec}  # fmt: skip
    got = {f"{rec}:{round(float(r['start_s']) * 360)}": float(r["p_af"]) for r in rows}
    assert len(ref) == 180 and ref.keys() == got.keys()
    assert max(abs(got[k] - v) for k, v in ref.items()) < 1e-4
    out2 = tmp_path / "af_detected.csv"
    stem = _unannotated_copy(data_dir, tmp_path)
    assert main(["predict", str(run), str(stem), "--out", str(out2)]) == 0
    assert {r["beats_source"] for r in _rows(out2)} == {"gqrs"}


def test_predict_beats_and_af_episodes_in_one_call(data_dir: Path, tmp_path: Path, capsys) -> None:
    beat_run = _train(data_dir, tmp_path / "beats", "mitdb_aami_resnet1d",
                      "task.params.records=[101, 119, 100]", "split.params.valid_groups=[119]")  # fmt: skip
    af_run = _train(data_dir, tmp_path / "af", "mitdb_af_rr_mlp",
                    "task.params.records=[201, 100, 203, 101, 210, 105]", "split.n_folds=3",
                    "model.params={hidden: [8]}", "trainer.max_epochs=15")  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "201.csv"
    rec = str(data_dir / "mitdb" / "201")
    assert main(["predict", str(beat_run), rec, "--out", str(out), "--af-run", str(af_run)]) == 0
    assert "AF episodes" in capsys.readouterr().out
    beats = _rows(out)
    assert len(beats) > 1900 and {"in_af_episode", "predicted_rhythm_aware"} <= set(beats[0])
    in_af = [b for b in beats if b["in_af_episode"] == "True"]
    assert in_af and all(b["predicted_rhythm_aware"] != "S" for b in in_af)
    episodes = _rows(out.with_suffix(".episodes.csv"))
    assert episodes and all(float(e["end_s"]) > float(e["start_s"]) for e in episodes)
    # the AF run goes in --af-run, not first: one-line error, exit code 2
    bad = ["predict", str(af_run), rec, "--out", str(out), "--af-run", str(beat_run)]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "expected a heartbeat run" in err and len(err.strip().splitlines()) == 1


def test_predict_ensemble_averages_seed_probabilities(data_dir: Path, tmp_path: Path) -> None:
    runs = [_train(data_dir, tmp_path / f"s{seed}", "mitdb_aami_resnet1d",
                   "task.params.records=[101, 119, 100]", "split.params.valid_groups=[119]",
                   f"trainer.seed={seed}") for seed in (0, 1)]  # fmt: skip
    rec = str(data_dir / "mitdb" / "100")
    single = []
    for i, run in enumerate(runs):
        out = tmp_path / f"p{i}.csv"
        assert main(["predict", str(run), rec, "--out", str(out)]) == 0
        single.append(np.array([float(r["p_V"]) for r in _rows(out)]))
    both = tmp_path / "ens.csv"
    assert main(["predict", str(runs[0]), rec, "--out", str(both), "--ensemble", str(runs[1])]) == 0
    ens = np.array([float(r["p_V"]) for r in _rows(both)])
    assert not np.allclose(single[0], single[1], atol=1e-4)  # two different members
    np.testing.assert_allclose(ens, (single[0] + single[1]) / 2, atol=2e-6)
    # ecg-score --ensemble scores the same averaged labels
    js = tmp_path / "ens.json"
    argv = ["ecg-score", str(runs[0]), rec, "--ensemble", str(runs[1]), "--out", str(js),
            "--n-bootstrap", "0"]  # fmt: skip
    assert main(argv) == 0
    scored = json.loads(js.read_text())
    names = scored["aami"]["class_names"]
    cm = np.zeros((len(names), len(names)), int)
    for r in _rows(both):
        cm[names.index(r["ref_class"]), names.index(r["predicted"])] += 1
    assert len(scored["runs"]) == 2 and scored["aami"]["confusion_matrix"] == cm.tolist()
    # members must share the task: the AF recipe's run is refused with a one-line error
    af = _train(data_dir, tmp_path / "af", "mitdb_af_rr_mlp",
                "task.params.records=[201, 100, 203, 101, 210, 105]", "split.n_folds=3",
                "model.params={hidden: [8]}")  # fmt: skip
    assert main(["predict", str(runs[0]), rec, "--out", str(both), "--ensemble", str(af)]) == 2
    assert main(["ecg-score", str(af), rec, "--out", str(js)]) == 2  # not a heartbeat run

"""`medtorch ensemble`: finished runs scored as one model from their saved probabilities."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as skm
import yaml

from medtorch.cli import main

FAST = ["trainer.max_epochs=1", "trainer.batch_size=128", "trainer.progress=false",
        "eval.n_bootstrap=50"]  # fmt: skip


def _train(out: Path, seed: int) -> Path:
    sets = [a for o in [*FAST, f"trainer.seed={seed}"] for a in ("--set", o)]
    assert main(["train", "lab2_seizure_cnn", "--out", str(out), *sets]) == 0
    (run,) = out.iterdir()
    return run


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ens")
    return _train(root / "s0", 0), _train(root / "s1", 1)


def _table(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c.startswith("p_")]
    p = np.array([[float(r[c]) for c in cols] for r in rows])  # rounded to 6 digits
    return [r["sample_id"] for r in rows], np.array([int(r["y_true"]) for r in rows]), p


def test_ensemble_scores_the_mean_probability(two_seeds, tmp_path: Path, capsys) -> None:
    a, b = two_seeds
    out = tmp_path / "ens"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    assert "valid: accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["run"] for m in metrics["ensemble"]] == [a.name, b.name]
    for part in ("valid", "test"):
        ids, y, p = _table(out / f"predictions_{part}.csv")
        ids_a, y_a, p_a = _table(a / f"predictions_{part}.csv")
        ids_b, _, p_b = _table(b / f"predictions_{part}.csv")
        assert ids == ids_a == ids_b and (y == y_a).all()
        assert not np.allclose(p_a, p_b, atol=1e-3)  # two different networks
        np.testing.assert_allclose(p, (p_a + p_b) / 2, atol=1e-5)
        overall = metrics[part]["overall"]
        assert overall["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
        assert overall["auroc"]["value"] == pytest.approx(
            skm.roc_auc_score(y, p / p.sum(1, keepdims=True), multi_class="ovr"), abs=1e-4
        )
        lo, hi = overall["auroc"]["ci"]
        assert lo <= overall["auroc"]["value"] <= hi


def _bad(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_ensembles_are_one_line(two_seeds, tmp_path: Path, capsys) -> None:
    a, b = two_seeds
    out = str(tmp_path / "ens")
    assert "at least 2 run folders" in _bad(capsys, "ensemble", str(a), "--out", out)
    assert "distinct run folders" in _bad(capsys, "ensemble", str(a), str(a), "--out", out)
    # a run of another split: averaging would mix different test samples
    other = tmp_path / "other_split"
    shutil.copytree(b, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["split"]["seed"] = cfg["split"]["seed"] + 1
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    line = _bad(capsys, "ensemble", str(a), str(other), "--out", out)
    assert "split" in line and str(other) in line
    # an older run folder without validation predictions
    old = tmp_path / "old"
    shutil.copytree(b, old)
    (old / "predictions_valid.csv").unlink()
    line = _bad(capsys, "ensemble", str(a), str(old), "--out", out)
    assert "predictions_valid.csv" in line and str(old) in line
    # predictions that are not the split's samples (a hand-edited or foreign file)
    edited = tmp_path / "edited"
    shutil.copytree(b, edited)
    lines = (edited / "predictions_test.csv").read_text().splitlines()
    (edited / "predictions_test.csv").write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    line = _bad(capsys, "ensemble", str(a), str(edited), "--out", out)
    assert (
        "predictions_test.csv" in line and "row 2 holds" in line and "medtorch data verify" in line
    )
    assert not (tmp_path / "ens").exists()  # nothing written before every file was checked
    # a folder that is not a run
    assert "config.yaml" in _bad(capsys, "ensemble", str(a), str(tmp_path), "--out", out)

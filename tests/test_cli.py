"""The CLI end to end: a real run on the bundled data, and one clear line for every bad input."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from medtorch.cli import main

FAST = [
    "--set",
    "trainer.max_epochs=1",
    "--set",
    "trainer.batch_size=128",
    "--set",
    "trainer.progress=false",
    "--set",
    "eval.n_bootstrap=50",
]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _bad(capsys, *argv: str) -> str:
    code, _, err = _run(capsys, *argv)
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _train_lab2(out: Path, *overrides: str) -> Path:
    """Train the fast lab-2 CNN into ``out`` with ``--set`` overrides; the run folder."""
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["train", "lab2_seizure_cnn", "--out", str(out), *FAST, *sets]) == 0
    (run,) = out.iterdir()
    return run


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _uci_rows(n: int = 30, label: object = None) -> tuple[list[str], list[list[object]]]:
    rng = np.random.default_rng(0)
    header = ["", *[f"X{i}" for i in range(1, 179)], "y"]
    rows = []
    for r in range(n):
        y = label if label is not None else 1 + r % 5
        rows.append([f"X{1 + r % 23}.V1.{r // 5}", *rng.integers(-200, 200, 178).tolist(), y])
    return header, rows


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    # optim.scheduler=none so the resume test may extend max_epochs
    return _train_lab2(
        tmp_path_factory.mktemp("runs"), "split.method=by_recording", "optim.scheduler=none"
    )


def test_train_writes_a_complete_run_folder(trained_run: Path) -> None:
    for f in (
        "config.yaml",
        "splits.json",
        "cohort.json",
        "metrics.json",
        "history.csv",
        "report.html",
        "predictions_test.csv",
        "normalizer.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (trained_run / f).is_file(), f
    splits = json.loads((trained_run / "splits.json").read_text())
    assert splits["leakage_audit"] == "passed"
    m = json.loads((trained_run / "metrics.json").read_text())
    acc = m["test"]["overall"]["accuracy"]
    assert 0.2 < acc["value"] <= 1.0  # one epoch learns something above chance (0.2)
    assert acc["ci"][0] <= acc["value"] <= acc["ci"][1]


def test_evaluate_reproduces_the_test_metrics(trained_run: Path, capsys) -> None:
    before = json.loads((trained_run / "metrics.json").read_text())["test"]["overall"]["accuracy"][
        "value"
    ]
    code, out, _ = _run(capsys, "evaluate", str(trained_run))
    assert code == 0 and "accuracy" in out
    after = json.loads((trained_run / "metrics.json").read_text())["test"]["overall"]["accuracy"][
        "value"
    ]
    assert after == pytest.approx(before, abs=1e-9)


def test_evaluate_with_tta_and_refuses_training_keys(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, _, err = _run(capsys, "evaluate", str(run), "--set", "eval.tta=true")
    assert code == 0, err
    assert "tta: true" in (run / "config.yaml").read_text()
    line = _bad(capsys, "evaluate", str(run), "--set", "trainer.seed=3")
    assert "trainer.seed" in line


def test_predict_csv(trained_run: Path, tmp_path: Path, capsys) -> None:
    header, rows = _uci_rows(12)
    src = _write_csv(tmp_path / "signals.csv", header, rows)
    code, out, _ = _run(
        capsys, "predict", str(trained_run), str(src), "--out", str(tmp_path / "p.csv")
    )
    assert code == 0, out
    got = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(got) == 12
    p = np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in got])
    assert p.shape == (12, 5) and np.allclose(p.sum(1), 1, atol=1e-4)


def test_export_onnx_with_parity(trained_run: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    out_file = tmp_path / "model.onnx"
    code, out, err = _run(capsys, "export", str(trained_run), "--out", str(out_file))
    assert code == 0, err
    assert out_file.stat().st_size > 0 and "on 256 test rows: max abs diff" in out
    assert float(out.rsplit("max abs diff", 1)[1]) < 1e-4
    assert "expected config.yaml in the run folder" in _bad(
        capsys, "export", str(tmp_path), "--out", "x.onnx"
    )


def test_resume_continues_to_more_epochs(trained_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, _, err = _run(capsys, "train", "--resume", str(run), "--set", "trainer.max_epochs=2")
    assert code == 0, err
    hist = list(csv.DictReader((run / "history.csv").open()))
    assert [int(h["epoch"]) for h in hist] == [1, 2]


def test_resume_with_another_schedule_length_is_refused(tmp_path: Path, capsys) -> None:
    run = _train_lab2(tmp_path / "runs")  # one-cycle schedule
    line = _bad(capsys, "train", "--resume", str(run), "--set", "trainer.max_epochs=2")
    assert "trainer.max_epochs" in line


def test_bad_missing_file(capsys, tmp_path: Path) -> None:
    line = _bad(
        capsys,
        "train",
        "lab2_seizure_cnn",
        *FAST,
        "--set",
        f"task.params.path={tmp_path / 'nope.csv'}",
    )
    assert "nope.csv" in line


def test_bad_csv_columns(capsys, tmp_path: Path) -> None:
    header, rows = _uci_rows()
    header[5] = "Z5"
    src = _write_csv(tmp_path / "cols.csv", header, rows)
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", f"task.params.path={src}")
    assert "cols.csv" in line and "X5" in line


def test_bad_label_outside_known_set(capsys, tmp_path: Path) -> None:
    header, rows = _uci_rows()
    rows[3][-1] = 7
    src = _write_csv(tmp_path / "label.csv", header, rows)
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", f"task.params.path={src}")
    assert "label.csv" in line and "7" in line


@pytest.mark.parametrize("value", ["nan", "abc", ""])
def test_bad_values(capsys, tmp_path: Path, value: str) -> None:
    header, rows = _uci_rows()
    rows[4][10] = value
    src = _write_csv(tmp_path / "vals.csv", header, rows)
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", f"task.params.path={src}")
    assert "vals.csv" in line and rows[4][0] in line


def test_bad_gzip_csv_columns(capsys, tmp_path: Path) -> None:
    header, rows = _uci_rows()
    src = tmp_path / "short.csv.gz"
    with gzip.open(src, "wt", newline="") as f:
        csv.writer(f).writerows([header[:-1], *[r[:-1] for r in rows]])
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", f"task.params.path={src}")
    assert "short.csv.gz" in line and "y" in line


def test_bad_empty_partition(capsys) -> None:
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", "split.ratios=[0.8, 0.0, 0.2]")
    assert "valid" in line and "split.ratios" in line


def test_bad_unknown_config_key(capsys) -> None:
    line = _bad(capsys, "train", "lab2_seizure_cnn", "--set", "trainer.max_epoch=3")
    assert "trainer.max_epoch" in line and "trainer.max_epochs" in line


def test_bad_unknown_model(capsys) -> None:
    line = _bad(capsys, "train", "lab2_seizure_cnn", *FAST, "--set", "model.name=lab_cnnn")
    assert "lab_cnnn" in line and "lab_cnn" in line and "model.name" in line


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.name=lab_cnnn", "model.name"),  # the model registry
        ("trainer.class_weights=[1.0, 2.0]", "trainer.class_weights"),  # the Trainer
        ("split.ratios=[0.8, 0.0, 0.2]", "split.ratios"),  # the split
    ],
)
def test_bad_setup_leaves_no_run_folder(capsys, tmp_path: Path, override: str, key: str) -> None:
    """An error before training starts removes the new run folder it would have filled."""
    out = tmp_path / "runs"
    line = _bad(capsys, "train", "lab2_seizure_cnn", "--out", str(out), *FAST, "--set", override)
    assert key in line
    assert out.is_dir() and not list(out.iterdir()), list(out.iterdir())


def test_bad_unknown_recipe(capsys) -> None:
    line = _bad(capsys, "train", "no_such_recipe")
    assert "no_such_recipe" in line


def test_bad_predict_csv_columns(trained_run: Path, tmp_path: Path, capsys) -> None:
    src = _write_csv(tmp_path / "few.csv", ["id", "X1", "X2"], [["a", 1, 2]])
    line = _bad(capsys, "predict", str(trained_run), str(src), "--out", str(tmp_path / "p.csv"))
    assert "few.csv" in line and "X3" in line


def test_bad_predict_lead_on_a_signal_csv_run(trained_run: Path, tmp_path: Path, capsys) -> None:
    src = _write_csv(tmp_path / "few.csv", ["id", "X1", "X2"], [["a", 1, 2]])
    out = tmp_path / "p.csv"
    line = _bad(capsys, "predict", str(trained_run), str(src), "--out", str(out), "--lead", "II")
    assert "--lead" in line and not out.exists()


def test_debug_shows_traceback(capsys) -> None:
    with pytest.raises(ValueError):
        main(["--debug", "train", "lab2_seizure_cnn", "--set", "trainer.max_epoch=3"])


def test_listing_commands(capsys) -> None:
    code, out, _ = _run(capsys, "models")
    assert code == 0 and "lab_cnn" in out and "hannun_resnet1d" in out
    code, out, _ = _run(capsys, "recipes")
    assert code == 0 and "lab2_seizure_cnn" in out and "seizure_resnet1d" in out


def test_same_seed_same_run(tmp_path: Path) -> None:
    """Two CLI runs of one recipe and seed give the same weights and history (CPU)."""
    import torch

    hist, weights = [], []
    for i in (1, 2):
        run = _train_lab2(tmp_path / str(i), "trainer.max_epochs=2")
        rows = list(csv.DictReader((run / "history.csv").open()))
        hist.append(
            [
                {k: v for k, v in r.items() if k not in ("epoch_time_s", "train_samples_per_s")}
                for r in rows
            ]
        )
        weights.append(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"])
    assert hist[0] == hist[1]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_probability_ensemble_is_the_mean_of_member_probabilities() -> None:
    import torch

    from medtorch.predict import ProbabilityEnsemble

    torch.manual_seed(0)
    members = [torch.nn.Linear(4, 3) for _ in range(3)]
    x = torch.randn(5, 4)
    ens = ProbabilityEnsemble(members)
    mean_p = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)
    torch.testing.assert_close(torch.softmax(ens(x), 1).float(), mean_p)


def test_every_recipe_is_a_valid_config() -> None:
    """A typo in a shipped recipe fails here, not in a user's first run."""
    from medtorch.config import load_config
    from medtorch.data.splits import list_protocols
    from medtorch.data.tasks import list_tasks
    from medtorch.models import list_models
    from medtorch.recipes import list_recipes

    for name in list_recipes():
        cfg = load_config(name)
        assert cfg.task.name in list_tasks() and cfg.model.name in list_models(), name
        assert cfg.split.method != "protocol" or cfg.split.protocol in list_protocols(), name

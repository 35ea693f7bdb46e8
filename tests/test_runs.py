"""`medtorch runs`: each run folder's recipe, date, test metrics and status, from its files."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from medtorch.cli import main
from medtorch.config import dump_config, load_config
from medtorch.runs import list_runs


def _run(root: Path, name: str, recipe: str = "lab2_seizure_cnn") -> Path:
    run = root / name
    run.mkdir(parents=True)
    dump_config(load_config(recipe), run / "config.yaml")
    return run


def test_runs_lists_every_status(tmp_path: Path, capsys) -> None:
    done = _run(tmp_path, "a-finished")
    overall = {"accuracy": {"value": 0.75}, "balanced_accuracy": {"value": 0.5},
               "auroc": {"value": None}}  # fmt: skip
    (done / "metrics.json").write_text(json.dumps({"best_epoch": 3, "test": {"overall": overall}}))
    half = _run(tmp_path, "b-interrupted", "lab3_seizure_gru")
    (half / "checkpoints").mkdir()
    torch.save({"format": 2, "epoch": 2}, half / "checkpoints" / "last.pt")
    _run(tmp_path, "c-not-started")
    bad = _run(tmp_path, "d-bad")
    (bad / "config.yaml").write_text("name: [unclosed\n")
    (tmp_path / "not-a-run").mkdir()
    rows = {r["run"]: r for r in list_runs(tmp_path)}
    assert set(rows) == {"a-finished", "b-interrupted", "c-not-started", "d-bad"}
    assert rows["a-finished"]["status"] == "finished" and rows["a-finished"]["accuracy"] == 0.75
    assert rows["b-interrupted"]["status"] == "interrupted"
    assert (
        rows["b-interrupted"]["epochs"] == "2/15"
        and rows["b-interrupted"]["recipe"] == "lab3_seizure_gru"
    )
    assert rows["c-not-started"]["status"] == "not started"
    assert rows["d-bad"]["status"].startswith("unreadable")
    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["run", "recipe", "date", "(UTC)"]
    line = next(ln for ln in out if ln.startswith("a-finished"))
    assert "finished" in line and "0.750" in line and "0.500" in line


def test_runs_on_a_missing_folder_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]

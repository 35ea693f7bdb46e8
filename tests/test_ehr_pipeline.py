"""EHR end to end: an event table through a recipe, the run folder, predict on new
patients, and RETAIN's explanations in the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medtorch.config import load_config
from medtorch.data.tasks.ehr import write_example
from medtorch.pipeline import train_run
from medtorch.predict import predict_to_csv


def _cfg(tmp_path: Path, task: str, model: str, **params: object) -> object:
    p = write_example(tmp_path)
    raw = {
        "name": f"tiny_{task}_{model}",
        "data": {"dataset": "mimic3_demo"},
        "task": {"name": task, "params": {**p, **params}},
        "split": {"method": "by_patient", "ratios": [0.5, 0.25, 0.25], "seed": 1},
        "model": {"name": model, "params": {}},
        "trainer": {"max_epochs": 2, "batch_size": 8, "progress": False, "num_threads": 1},
        "eval": {"n_bootstrap": 20},
    }
    return load_config(raw)


@pytest.mark.parametrize(
    ("task", "model"),
    [("mortality_next_visit", "retain"), ("in_hospital_mortality_48h", "event_gru"),
     ("next_visit_diagnosis", "visit_gru"), ("next_visit_diagnosis", "retain")],
)  # fmt: skip
def test_event_table_to_run_folder_and_predict(tmp_path: Path, task: str, model: str) -> None:
    cfg = _cfg(tmp_path, task, model)
    run = train_run(cfg, tmp_path / "runs")
    vocab = json.loads((run / "vocab.json").read_text())
    spec = json.loads((run / "model.json").read_text())
    assert spec["hints"]["n_inputs"] == len(vocab["codes"]) + 2  # pad and unknown
    assert spec["input_kinds"]["x"] == "codes"
    metrics = json.loads((run / "metrics.json").read_text())
    if task == "next_visit_diagnosis":
        assert {"recall@10", "micro_auprc"} <= set(metrics["test"]["overall"])
        assert spec["class_names"] == vocab["label_names"]  # the label space fitted on train
        cohort = json.loads((run / "cohort.json").read_text())
        assert cohort["label_space"]["categories_kept"] == len(vocab["label_names"])
    else:
        assert "auroc" in metrics["test"]["overall"]
    splits = json.loads((run / "splits.json").read_text())
    assert splits["leakage_audit"]["passed"] if isinstance(splits["leakage_audit"], dict) else True
    out = tmp_path / "pred.csv"
    msg = predict_to_csv(run, tmp_path / "events.parquet", out)
    rows = list(csv.DictReader(out.open()))
    assert "wrote" in msg and len(rows) == 12  # one per patient of the table
    probs = [float(v) for r in rows for k, v in r.items() if k.startswith("p_")]
    assert all(0.0 <= p <= 1.0 for p in probs)
    if model == "retain":
        explained = json.loads((run / "explanations.json").read_text())
        assert explained and all(s["steps"] for s in explained)
        codes = [c for s in explained for st in s["steps"] for c, _ in st["top"]]
        assert codes and all(isinstance(c, str) and "//" in c for c in codes)
        assert "Explanations (example test samples)" in (run / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.realdata
def test_mimic3_demo_recipe_trains(data_dir: Path, tmp_path: Path) -> None:
    cfg = load_config("mimic3_mortality_gru", ["trainer.max_epochs=1", "trainer.progress=false",
                                               "eval.n_bootstrap=20"])  # fmt: skip
    cfg.data.data_dir = str(data_dir)
    run = train_run(cfg, tmp_path)
    cohort = json.loads((run / "cohort.json").read_text())
    assert cohort["subjects_in"] == 100 and cohort["admissions_in"] == 129
    assert cohort["rows_read"] == sum(cohort["class_counts"].values()) + sum(
        cohort["rows_dropped"].values()
    )


@pytest.mark.realdata
def test_data_convert_writes_a_meds_folder_that_reads_back(data_dir: Path, tmp_path: Path) -> None:
    from medtorch.cli import main
    from medtorch.ehr import load_events, read_meds

    out = tmp_path / "meds"
    assert (
        main(["--data-dir", str(data_dir), "data", "convert", "mimic3", str(out), "--to", "meds"])
        == 0
    )
    back = read_meds(out)
    events, _ = load_events("mimic3", data_dir / "mimic3_demo", use_cache=False)
    assert back.height == events.height and back["subject_id"].n_unique() == 100
    assert (out / "metadata" / "codes.parquet").is_file()
    assert main(["data", "convert", "nosuch", str(tmp_path / "x")]) == 2


def test_next_visit_label_space_is_fitted_on_the_training_subjects(tmp_path: Path) -> None:
    """A diagnosis category that only a test subject's next visit has is no label column,
    and the cohort counts it as dropped."""
    import polars as pl

    from medtorch.pipeline import prepare

    cfg = _cfg(tmp_path, "next_visit_diagnosis", "visit_gru")
    first = prepare(cfg, None)
    assert first.parts["train"].class_names == first.encoder.vocab.label_names
    held = first.parts["test"].groups[0]  # a test subject: plant a category in its last stay
    ev = pl.read_parquet(tmp_path / "events.parquet")
    last = ev.filter((pl.col("subject_id") == int(held)) & (pl.col("code") == "HOSPITAL_DISCHARGE"))
    planted = last.tail(1).with_columns(pl.lit("DIAGNOSIS//ICD9CM//9990").alias("code"))
    pl.concat([ev, planted]).write_parquet(tmp_path / "events.parquet")
    prep = prepare(cfg, None)
    assert list(prep.parts["test"].groups) == list(first.parts["test"].groups)  # same split
    assert "ICD9CM//999" in prep.dataset.meta["cohort"]["label_balance"]  # in the cohort...
    for part in prep.parts.values():  # ...but no label column of any partition
        assert "ICD9CM//999" not in part.class_names
        assert part.y.shape[1] == len(part.class_names) == len(prep.encoder.vocab.label_names)
    space = prep.dataset.meta["cohort"]["label_space"]
    assert space["categories_dropped"] == space["categories_in_cohort"] - space["categories_kept"]
    assert space["categories_dropped"] >= 1
    dropped = [e for e in prep.dataset.meta["cohort"]["exclusions"]
               if e["unit"] == "label categories"]  # fmt: skip
    assert dropped and dropped[0]["count"] == space["categories_dropped"]

"""Readable code names in reports: the MIMIC D_* dictionaries and a MEDS folder's
codes.parquet name the codes of the vocabulary, RETAIN's explanations and the report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ehr_synth import write_mimic3
from medtorch.data.tasks.ehr import VocabEncoder, write_example
from medtorch.data.tasks.registry import build_task
from medtorch.ehr import code_descriptions, write_meds
from medtorch.ehr.names import describe

HTN = "DIAGNOSIS//ICD9CM//4019"


def _encoder(task: str, data_dir: Path | None, params: dict) -> VocabEncoder:
    ds = build_task(task, data_dir, params)
    return VocabEncoder.fit(ds, np.arange(len(ds)), {})


def _decoded(enc: VocabEncoder) -> dict[str, str]:
    return {c: enc.decode(i + 2) for i, c in enumerate(enc.vocab.codes)}


def test_mimic3_dictionaries_name_codes_keyed_by_the_normalised_code(tmp_path: Path) -> None:
    src = write_mimic3(tmp_path / "m3")
    with gzip.open(src / "D_ICD_DIAGNOSES.csv.gz", "wt") as fh:
        fh.write('"ROW_ID","ICD9_CODE","SHORT_TITLE","LONG_TITLE"\n'
                 '1,"4019","Hypertension NOS","Unspecified essential hypertension"\n')  # fmt: skip
    names = code_descriptions("mimic3", src, [HTN, "DIAGNOSIS//ICD//9//401.9", "LAB//1"])
    assert names == {HTN: "Unspecified essential hypertension",
                     "DIAGNOSIS//ICD//9//401.9": "Unspecified essential hypertension"}  # fmt: skip
    assert describe(HTN, names) == f"{HTN} (Unspecified essential hypertension)"
    assert describe("LAB//1", names) == "LAB//1"  # not in the dictionary: as it is
    (src / "D_ICD_DIAGNOSES.csv.gz").unlink()  # no dictionary: no names, no error
    assert code_descriptions("mimic3", src, [HTN]) == {}


def test_a_meds_folder_names_its_codes_and_an_event_table_keeps_them(tmp_path: Path) -> None:
    params = write_example(tmp_path)
    events = pl.read_parquet(params["path"]).rename({"value": "numeric_value"})
    codes = pl.DataFrame({"code": ["LAB//50900", "DIAGNOSIS//ICD//9//401"],
                          "description": ["Sodium", "Malignant essential hypertension"]})  # fmt: skip
    meds = write_meds(events.with_columns(pl.col("numeric_value").cast(pl.Float32)),
                      tmp_path / "meds")  # fmt: skip
    codes.write_parquet(meds / "metadata" / "codes.parquet")  # another tool's spelling
    enc = _encoder("mortality_next_visit", None, {"source": "tiny", "path": str(meds),
                                                  "format": "meds",
                                                  "cache_dir": str(tmp_path / "c")})  # fmt: skip
    named = _decoded(enc)
    assert named["DIAGNOSIS//ICD9CM//401"] == (
        "DIAGNOSIS//ICD9CM//401 (Malignant essential hypertension)"
    )  # the MEDS ETL's spelling found by its normalised key
    assert named["LAB//50900"] == "LAB//50900 (Sodium)"
    assert named["DIAGNOSIS//ICD9CM//4280"] == "DIAGNOSIS//ICD9CM//4280"  # unnamed: as it is
    back = VocabEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))  # vocab.json keeps them
    assert _decoded(back) == named
    plain = _encoder("mortality_next_visit", None, params)  # a bare event table: no dictionary
    assert plain.vocab.descriptions is None
    assert all(v == k for k, v in _decoded(plain).items())


def test_retain_explanations_and_report_show_the_names(tmp_path: Path) -> None:
    from medtorch.config import load_config
    from medtorch.pipeline import train_run

    params = write_example(tmp_path)
    events = pl.read_parquet(params["path"]).rename({"value": "numeric_value"})
    names = {"DIAGNOSIS//ICD9CM//4280": "Congestive heart failure, unspecified"}
    meds = write_meds(events.with_columns(pl.col("numeric_value").cast(pl.Float32)),
                      tmp_path / "meds", codes=pl.DataFrame({"code": list(names),
                                                             "description": list(names.values())}))  # fmt: skip
    cfg = load_config({
        "name": "tiny_retain_names", "data": {"dataset": "mimic3_demo"},
        "task": {"name": "mortality_next_visit",
                 "params": {"source": "tiny", "path": str(meds), "format": "meds",
                            "cache_dir": str(tmp_path / "c")}},
        "split": {"method": "by_patient", "ratios": [0.5, 0.25, 0.25], "seed": 1},
        "model": {"name": "retain", "params": {}},
        "trainer": {"max_epochs": 1, "batch_size": 8, "progress": False, "num_threads": 1},
        "eval": {"n_bootstrap": 10},
    })  # fmt: skip
    run = train_run(cfg, tmp_path / "runs")
    shown = [c for s in json.loads((run / "explanations.json").read_text())
             for st in s["steps"] for c, _ in st["top"]]  # fmt: skip
    label = "DIAGNOSIS//ICD9CM//4280 (Congestive heart failure, unspecified)"
    assert label in shown  # every patient has it in every visit
    assert label in (run / "report.html").read_text()


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["mimic3_demo", "mimic4_demo"])
def test_real_demo_dictionaries_name_the_vocabulary(data_dir: Path, source: str) -> None:
    enc = _encoder("mortality_next_visit", data_dir, {"source": source})
    named = _decoded(enc)
    assert named[HTN] == f"{HTN} (Unspecified essential hypertension)"
    labs = [v for k, v in named.items() if k.startswith("LAB//")]
    assert labs and all(v.endswith(")") and " (" in v for v in labs)  # D_LABITEMS: label (fluid)
    assert sum(v != k for k, v in named.items()) > 0.5 * len(named)
    assert enc.vocab.descriptions is not None and set(enc.vocab.descriptions) <= set(named)

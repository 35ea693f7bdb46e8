"""Readers of medtorch.ehr: MIMIC-III, MIMIC-IV, MEDS folders, long event tables, write_meds."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from ehr_synth import small_mimic3, write_mimic3
from medtorch.ehr import (
    build_samples,
    diagnosis_category_expr,
    icd_category,
    mimic_codes,
    normalize_icd,
    read_event_table,
    read_meds,
    read_mimic3,
    read_mimic4,
    read_subject_splits,
    write_meds,
)
from medtorch.ehr.schema import DEATH_FLAG_WITHOUT_TIME
from medtorch.errors import DataError


def _codes(ev: pl.DataFrame, prefix: str) -> list[str]:
    return sorted(ev.filter(pl.col("code").str.starts_with(prefix))["code"].to_list())


def test_mimic3_synthetic_tables_become_meds_events(tmp_path):
    report: dict = {}
    ev = read_mimic3(write_mimic3(tmp_path / "m3"), report=report)
    assert ev.schema["subject_id"] == pl.Int64 and ev.schema["time"] == pl.Datetime("us")
    assert ev.schema["numeric_value"] == pl.Float32
    assert _codes(ev, "DIAGNOSIS") == [
        "DIAGNOSIS//ICD9CM//4019",
        "DIAGNOSIS//ICD9CM//4280",
        "DIAGNOSIS//ICD9CM//E8889",
        "DIAGNOSIS//ICD9CM//V707",
    ]
    # diagnoses carry no time in MIMIC: they sit at their admission's discharge
    dx = ev.filter(pl.col("code").str.starts_with("DIAGNOSIS"), pl.col("hadm_id") == 1001)
    assert set(dx["time"].to_list()) == {datetime(2150, 1, 5, 8)}
    assert ev.filter(pl.col("code") == "GENDER//F")["time"].null_count() == 1
    # one death per patient, at the in-hospital DEATHTIME rather than the day-only DOD
    deaths = ev.filter(pl.col("code") == "MEDS_DEATH")
    assert deaths.height == 1 and deaths["time"][0] == datetime(2150, 2, 20, 12)
    # STARTDATE is a day: end of that day, never after discharge
    rx = ev.filter(pl.col("code").str.starts_with("MEDICATION")).sort("time")
    assert rx["time"].to_list() == [
        datetime(2150, 1, 2, 23, 59, 59, 999999),
        datetime(2150, 1, 5, 8),  # started on the discharge day: capped at discharge
        datetime(2150, 3, 1, 23, 59, 59, 999999),
    ]
    lab = ev.filter(pl.col("code") == "LAB//51221")
    assert lab["numeric_value"][0] is None and lab["text_value"][0] == "pos"
    assert report["dropped"] == {"DIAGNOSES_ICD: empty ICD code": 1} and report["admissions"] == 3
    assert ev.filter(pl.col("code") == "ICU_ADMISSION")["text_value"].to_list() == ["MICU"]


def test_mimic3_lower_case_plain_csv_reads_the_same(tmp_path):
    a = read_mimic3(write_mimic3(tmp_path / "up"))
    b = read_mimic3(write_mimic3(tmp_path / "low", lower=True, gz=False))
    assert a.equals(b)


def _with_admissions(rows):
    tables = small_mimic3()
    tables["ADMISSIONS"] = rows
    return tables


def test_death_flag_stored_as_text_is_an_error_naming_table_column_row(tmp_path):
    rows = small_mimic3()["ADMISSIONS"]
    rows[1][-1] = "yes"
    folder = write_mimic3(tmp_path / "m", _with_admissions(rows))
    with pytest.raises(
        DataError, match=r"0 or 1, got 'yes' in ADMISSIONS .*HOSPITAL_EXPIRE_FLAG row 2"
    ):
        read_mimic3(folder)


def test_unparseable_timestamp_is_an_error_naming_the_row(tmp_path):
    rows = small_mimic3()["ADMISSIONS"]
    rows[2][3] = "01/03/2150 10:00"
    folder = write_mimic3(tmp_path / "m", _with_admissions(rows))
    with pytest.raises(DataError, match=r"got '01/03/2150 10:00' in ADMISSIONS .*ADMITTIME row 3"):
        read_mimic3(folder)


def test_missing_required_column_is_an_error(tmp_path):
    folder = write_mimic3(
        tmp_path / "m",
        headers={"DIAGNOSES_ICD": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD_CODE"]},
    )
    with pytest.raises(DataError, match=r"column ICD9_CODE.* in DIAGNOSES_ICD"):
        read_mimic3(folder)


def test_duplicate_admission_rows_are_an_error(tmp_path):
    rows = small_mimic3()["ADMISSIONS"]
    rows.append(list(rows[0]))
    folder = write_mimic3(tmp_path / "m", _with_admissions(rows))
    with pytest.raises(DataError, match=r"HADM_ID=1001 in rows \[1, 4\] of ADMISSIONS"):
        read_mimic3(folder)


def test_missing_table_is_an_error(tmp_path):
    tables = small_mimic3()
    del tables["LABEVENTS"]
    folder = write_mimic3(tmp_path / "m", tables)
    with pytest.raises(DataError, match="LABEVENTS"):
        read_mimic3(folder)
    assert (
        read_mimic3(folder, tables=["DIAGNOSES_ICD"])
        .filter(pl.col("code").str.starts_with("LAB"))
        .height
        == 0
    )


def test_death_flag_without_death_time_is_never_silent(tmp_path):
    rows = small_mimic3()["ADMISSIONS"]
    rows[1][5] = ""  # flag 1, DEATHTIME empty
    folder = write_mimic3(tmp_path / "m", _with_admissions(rows))
    with pytest.raises(DataError, match=r"DEATHTIME where HOSPITAL_EXPIRE_FLAG is 1.*row 2"):
        read_mimic3(folder, death_flag_without_time="error")
    report: dict = {}
    ev = read_mimic3(folder, report=report)
    assert report["death_flag_without_time"] == 1
    assert ev.filter(pl.col("code") == DEATH_FLAG_WITHOUT_TIME)["hadm_id"].to_list() == [1002]
    s = build_samples(ev, "mortality_next_visit")
    flow = {e["reason"]: e["count"] for e in s.cohort["exclusions"]}
    assert flow["next admission unusable (its label cannot be read)"] == 1
    assert len(s) == 0
    rep2: dict = {}
    ev2 = read_mimic3(folder, death_flag_without_time="discharge", report=rep2)
    assert ev2.filter(pl.col("code") == "MEDS_DEATH")["time"].to_list() == [
        datetime(2150, 2, 20, 12)
    ]
    assert sum(rep2["dropped"].values()) >= 1


def test_icd_helpers():
    assert normalize_icd(" 401.9 ") == "4019" and normalize_icd("9.0") == "0090"
    assert normalize_icd("e88.89") == "E08889" and normalize_icd("v7.07") == "V0707"
    assert [icd_category(c) for c in ("4019", "V707", "E8889", "0090")] == [
        "401",
        "V70",
        "E888",
        "009",
    ]
    assert icd_category("M8008XA", version=10) == "M80"
    frame = pl.DataFrame(
        {
            "code": [
                "DIAGNOSIS//ICD9CM//4019",
                "DIAGNOSIS//ICD//9//E8889",
                "DIAGNOSIS//ICD//10//M8008XA",
                "DIAGNOSIS//ICD10CM//E11.9",
                "LAB//50912",
            ]
        }
    )
    got = frame.select(diagnosis_category_expr().alias("cat"))["cat"].to_list()
    assert got == ["ICD9CM//401", "ICD9CM//E888", "ICD10CM//M80", "ICD10CM//E11", None]


def test_write_meds_round_trip(tmp_path):
    ev = read_mimic3(write_mimic3(tmp_path / "m"))
    splits = pl.DataFrame({"subject_id": [101, 102], "split": ["train", "held_out"]})
    out = write_meds(
        ev,
        tmp_path / "meds",
        codes=pl.DataFrame({"code": ["LAB//50912"], "description": ["Creat"]}),
        subject_splits=splits,
        shard_subjects=1,
    )
    assert len(list((out / "data").glob("*.parquet"))) == 2
    back = read_meds(out)
    assert back.equals(
        ev.sort(["subject_id", "time", "code"], nulls_last=False, maintain_order=True)
    )
    codes = pl.read_parquet(out / "metadata" / "codes.parquet")
    assert set(codes["code"]) == set(ev["code"])
    assert codes.filter(pl.col("code") == "LAB//50912")["description"][0] == "Creat"
    assert read_subject_splits(out).equals(splits)


def test_meds_folder_with_a_wrong_schema_is_an_error(tmp_path):
    (tmp_path / "bad" / "data").mkdir(parents=True)
    pl.DataFrame(
        {"subject_id": ["a"], "time": [datetime(2150, 1, 1)], "code": ["X"]}
    ).write_parquet(tmp_path / "bad" / "data" / "0.parquet")
    with pytest.raises(
        DataError,
        match=r"column 'subject_id' of type Int64, got String in MEDS file data/0.parquet",
    ):
        read_meds(tmp_path / "bad")
    pl.DataFrame({"subject_id": [1], "code": ["X"]}).write_parquet(
        tmp_path / "bad" / "data" / "0.parquet"
    )
    with pytest.raises(DataError, match="column 'time'"):
        read_meds(tmp_path / "bad")
    with pytest.raises(DataError, match="data/"):
        read_meds(tmp_path / "nothing")


def test_event_table_column_mapping(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text(
        "pid,when,what,val\n1,2150-01-01 10:00:00,LAB//1,3.5\n1,2150-01-02,NOTE,high\n2,,GENDER//F,\n"
    )
    ev = read_event_table(
        path, {"subject_id": "pid", "time": "when", "code": "what", "value": "val"}
    )
    assert ev["numeric_value"].to_list() == [3.5, None, None]
    assert ev["text_value"].to_list() == [None, "high", None]
    assert ev["time"].to_list() == [datetime(2150, 1, 1, 10), datetime(2150, 1, 2), None]
    with pytest.raises(DataError, match=r"column 'valu' \(mapped to value\).*data.columns.value"):
        read_event_table(
            path, {"subject_id": "pid", "time": "when", "code": "what", "value": "valu"}
        )
    path.write_text("pid,when,what\n1,2150-01-01 10:00:00,A\n1,yesterday,B\n")
    with pytest.raises(DataError, match=r"got 'yesterday' in ev.csv column 'when' row 2"):
        read_event_table(path, {"subject_id": "pid", "time": "when", "code": "what"})


@pytest.mark.realdata
def test_mimic3_demo(data_dir):
    root = data_dir / "mimic3_demo"
    report: dict = {}
    ev = read_mimic3(root, report=report)
    adm = pl.read_csv(root / "ADMISSIONS.csv.gz", infer_schema_length=0)
    pat = pl.read_csv(root / "PATIENTS.csv.gz", infer_schema_length=0)
    assert ev.filter(pl.col("code") == "HOSPITAL_ADMISSION").height == adm.height == 129
    assert ev["subject_id"].n_unique() == pat.height == 100
    dead = set(pat.filter(pl.col("DOD").is_not_null())["SUBJECT_ID"].cast(int)) | set(
        adm.filter(pl.col("DEATHTIME").is_not_null())["SUBJECT_ID"].cast(int)
    )
    assert set(ev.filter(pl.col("code") == "MEDS_DEATH")["subject_id"]) == dead
    dx = pl.read_csv(root / "DIAGNOSES_ICD.csv.gz", infer_schema_length=0)
    assert (
        ev.filter(pl.col("code").str.starts_with("DIAGNOSIS//ICD9CM//")).height
        == dx["ICD9_CODE"].drop_nulls().len()
    )
    assert ev.filter(pl.col("code").str.starts_with("LAB//")).height == 76074
    codes = mimic_codes(root)
    assert codes.filter(pl.col("code") == "DIAGNOSIS//ICD9CM//4019")["description"][0].startswith(
        "Unspecified essential"
    )


@pytest.mark.realdata
def test_mimic4_demo_and_its_meds_derivative(data_dir):
    report: dict = {}
    ev = read_mimic4(data_dir / "mimic4_demo", report=report)
    assert ev.filter(pl.col("code") == "HOSPITAL_ADMISSION").height == 275
    assert ev.filter(pl.col("code").str.starts_with("DIAGNOSIS//ICD10CM//")).height > 0
    assert ev.filter(pl.col("code").str.starts_with("PROCEDURE//ICD10PCS//")).height > 0
    # the demo's hospital_expire_flag rows all carry a deathtime; the check is counted
    assert report["death_flag_without_time"] == 0
    meds = read_event_table(
        data_dir / "mimic4_demo_meds" / "mimic_iv_demo_meds_events.parquet", {"value": "value"}
    )
    assert meds.height == 916_166 and meds["numeric_value"].drop_nulls().len() == 405_236
    assert meds["subject_id"].n_unique() == 100


def test_convert_to_meds_keeps_events_and_descriptions(tmp_path):
    from medtorch.ehr import convert_to_meds

    src = write_mimic3(tmp_path / "m3")
    gz = __import__("gzip")
    with gz.open(src / "D_LABITEMS.csv.gz", "wt") as fh:
        fh.write(
            '"ROW_ID","ITEMID","LABEL","FLUID","CATEGORY","LOINC_CODE"\n1,50912,"Creatinine","Blood","Chemistry",\n'
        )
    out = convert_to_meds("mimic3", src, tmp_path / "meds")
    back = read_meds(out)
    ev = read_mimic3(src)
    assert back.equals(
        ev.sort(["subject_id", "time", "code"], nulls_last=False, maintain_order=True)
    )
    codes = pl.read_parquet(out / "metadata" / "codes.parquet")
    assert codes.filter(pl.col("code") == "LAB//50912")["description"].to_list() == [
        "Creatinine (Blood)"
    ]


def _write_mimic4(root, dx_version="9"):
    (root / "hosp").mkdir(parents=True)
    (root / "hosp" / "patients.csv").write_text(
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n1,F,60,2150,2008 - 2010,2151-03-04\n"
    )
    (root / "hosp" / "admissions.csv").write_text(
        "subject_id,hadm_id,admittime,dischtime,deathtime,hospital_expire_flag\n"
        "1,10,2150-01-01 08:00:00,2150-01-04 08:00:00,,0\n"
    )
    (root / "hosp" / "diagnoses_icd.csv").write_text(
        f"subject_id,hadm_id,seq_num,icd_code,icd_version\n1,10,1,E119,10\n1,10,2,4019,{dx_version}\n"
    )
    (root / "hosp" / "procedures_icd.csv").write_text(
        "subject_id,hadm_id,seq_num,chartdate,icd_code,icd_version\n1,10,1,2150-01-02,0DJD8ZZ,10\n"
    )
    return root


def test_mimic4_versions_birth_and_procedure_dates(tmp_path):
    root = _write_mimic4(tmp_path / "m4")
    ev = read_mimic4(root, tables=["diagnoses_icd", "procedures_icd"])
    assert _codes(ev, "DIAGNOSIS") == ["DIAGNOSIS//ICD10CM//E119", "DIAGNOSIS//ICD9CM//4019"]
    px = ev.filter(pl.col("code") == "PROCEDURE//ICD10PCS//0DJD8ZZ")
    assert px["time"].to_list() == [
        datetime(2150, 1, 2, 23, 59, 59, 999999)
    ]  # end of its chart day
    assert ev.filter(pl.col("code") == "MEDS_BIRTH")["time"].to_list() == [datetime(2090, 1, 1)]
    assert ev.filter(pl.col("code") == "MEDS_DEATH")["time"].to_list() == [datetime(2151, 3, 4)]
    bad = _write_mimic4(tmp_path / "bad", dx_version="ICD9")
    with pytest.raises(DataError, match=r"got 'ICD9' in diagnoses_icd .*ICD_VERSION row 2"):
        read_mimic4(bad, tables=["diagnoses_icd"])

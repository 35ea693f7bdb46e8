"""Tiny synthetic EHR inputs for the tests of medtorch.ehr (imported by tests/test_ehr_*.py)."""

from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

T0 = datetime(2150, 1, 1, 8, 0, 0)


def at(days: float = 0.0, hours: float = 0.0) -> datetime:
    """T0 plus a number of days and hours."""
    return T0 + timedelta(days=days, hours=hours)


def events(rows: list[tuple]) -> pl.DataFrame:
    """An event table from (subject_id, time, code[, numeric_value[, hadm_id]]) tuples."""
    full = [(*r, None, None)[:5] for r in rows]
    return pl.DataFrame(
        full,
        schema={
            "subject_id": pl.Int64,
            "time": pl.Datetime("us"),
            "code": pl.String,
            "numeric_value": pl.Float32,
            "hadm_id": pl.Int64,
        },
        orient="row",
    ).with_columns(pl.lit(None, pl.String).alias("text_value"))


def admission(subject: int, hadm: int, start: datetime, end: datetime | None, codes=(), died=False):
    """Rows for one admission: admission, discharge, diagnoses at discharge, death."""
    rows = [(subject, start, "HOSPITAL_ADMISSION", None, hadm)]
    if end is not None:
        rows.append((subject, end, "HOSPITAL_DISCHARGE", None, hadm))
        rows += [(subject, end, c, None, hadm) for c in codes]
    if died:
        rows.append((subject, end, "MEDS_DEATH", None, hadm))
    return rows


MIMIC3_HEADERS = {
    "PATIENTS": [
        "ROW_ID",
        "SUBJECT_ID",
        "GENDER",
        "DOB",
        "DOD",
        "DOD_HOSP",
        "DOD_SSN",
        "EXPIRE_FLAG",
    ],
    "ADMISSIONS": [
        "ROW_ID",
        "SUBJECT_ID",
        "HADM_ID",
        "ADMITTIME",
        "DISCHTIME",
        "DEATHTIME",
        "HOSPITAL_EXPIRE_FLAG",
    ],
    "DIAGNOSES_ICD": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"],
    "PROCEDURES_ICD": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"],
    "PRESCRIPTIONS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "STARTDATE", "DRUG", "NDC"],
    "LABEVENTS": ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM"],
    "ICUSTAYS": [
        "ROW_ID",
        "SUBJECT_ID",
        "HADM_ID",
        "ICUSTAY_ID",
        "FIRST_CAREUNIT",
        "INTIME",
        "OUTTIME",
    ],
}


def small_mimic3() -> dict[str, list[list]]:
    """Two patients, three admissions, a few rows in every table the reader reads."""
    return {
        "PATIENTS": [
            [1, 101, "F", "2100-01-01 00:00:00", "2150-02-20 00:00:00", "", "", 1],
            [2, 102, "M", "2090-05-05 00:00:00", "", "", "", 0],
        ],
        "ADMISSIONS": [
            [1, 101, 1001, "2150-01-01 08:00:00", "2150-01-05 08:00:00", "", 0],
            [2, 101, 1002, "2150-02-10 08:00:00", "2150-02-20 12:00:00", "2150-02-20 12:00:00", 1],
            [3, 102, 1003, "2150-03-01 10:00:00", "2150-03-02 10:00:00", "", 0],
        ],
        "DIAGNOSES_ICD": [
            [1, 101, 1001, 1, "4019"],
            [2, 101, 1001, 2, "V707"],
            [3, 101, 1002, 1, "E8889"],
            [4, 102, 1003, 1, "4280"],
            [5, 102, 1003, 2, ""],
        ],
        "PROCEDURES_ICD": [[1, 101, 1001, 1, "3961"]],
        "PRESCRIPTIONS": [
            [1, 101, 1001, "2150-01-02 00:00:00", "Aspirin", "00904404073"],
            [2, 101, 1001, "2150-01-05 00:00:00", "Heparin", "0"],
            [3, 102, 1003, "2150-03-01 00:00:00", "Aspirin", ""],
        ],
        "LABEVENTS": [
            [1, 101, 1001, 50912, "2150-01-01 09:00:00", "1.2", "1.2"],
            [2, 101, "", 50912, "2150-01-20 09:00:00", "1.0", "1.0"],
            [3, 102, 1003, 51221, "2150-03-01 11:00:00", "pos", ""],
        ],
        "ICUSTAYS": [[1, 101, 1002, 5001, "MICU", "2150-02-10 09:00:00", "2150-02-12 09:00:00"]],
    }


def write_mimic3(
    folder: Path,
    tables: dict[str, list[list]] | None = None,
    *,
    lower: bool = False,
    gz: bool = True,
    headers: dict[str, list[str]] | None = None,
) -> Path:
    """Write MIMIC-III-shaped CSV(.gz) tables into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = small_mimic3() if tables is None else tables
    hdrs = {**MIMIC3_HEADERS, **(headers or {})}
    for name, rows in tables.items():
        stem = name.lower() if lower else name
        path = folder / (f"{stem}.csv.gz" if gz else f"{stem}.csv")
        opener = gzip.open if gz else open
        with opener(path, "wt", newline="") as fh:
            w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
            w.writerow(hdrs[name])
            w.writerows(rows)
    return folder

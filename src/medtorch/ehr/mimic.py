"""MIMIC-III and MIMIC-IV hospital tables -> the canonical MEDS event table.

What each table becomes (codes as in :mod:`medtorch.ehr.schema`):

- PATIENTS / patients: ``MEDS_BIRTH`` at DOB (MIMIC-IV: 1 January of ``anchor_year -
  anchor_age``, the usual approximation), ``GENDER//F`` as a static fact (null time), and
  one ``MEDS_DEATH`` per patient who died: at the in-hospital ``DEATHTIME`` when there is
  one, else at DOD.
- ADMISSIONS / admissions: ``HOSPITAL_ADMISSION`` at ADMITTIME and ``HOSPITAL_DISCHARGE``
  at DISCHTIME, with ``hadm_id``. A repeated HADM_ID is an error. A death flag
  (HOSPITAL_EXPIRE_FLAG) that is not 0/1 is an error naming the row. A flag set with no
  DEATHTIME is handled by ``death_flag_without_time``: ``"exclude"`` (default) writes a
  ``MEDTORCH_EXCLUDE//DEATH_FLAG_WITHOUT_TIME`` note that every task counts as an
  excluded admission, ``"error"`` raises naming the row, ``"discharge"`` takes DISCHTIME
  as the time of death (counted in ``report``). An empty DISCHTIME writes no discharge
  event: the tasks count that admission as excluded.
- DIAGNOSES_ICD: ``DIAGNOSIS//ICD9CM//<code>`` (MIMIC-IV: ``ICD9CM`` or ``ICD10CM`` from
  ``icd_version``). MIMIC gives diagnoses no time: they are coded at the end of the stay,
  so they are **timed at the admission's discharge**. That is what keeps them out of any
  prediction made during the stay (a 48 h task never sees the stay's own diagnoses).
- PROCEDURES_ICD: ``PROCEDURE//ICD9PCS//<code>`` (MIMIC-IV: ``ICD9PCS``/``ICD10PCS``).
  MIMIC-III: at discharge, as diagnoses. MIMIC-IV: at the end of ``chartdate``, never
  after discharge.
- PRESCRIPTIONS: ``MEDICATION//<DRUG>`` (``drug_code="ndc"``: ``MEDICATION//NDC//<NDC>``,
  the drug name where NDC is 0 or empty). MIMIC-III STARTDATE is a day: it is placed at the
  end of that day, never after discharge (a 48 h cut never sees a drug of later that day).
  MIMIC-IV ``starttime`` is taken as it is.
- LABEVENTS: ``LAB//<ITEMID>`` at CHARTTIME, ``numeric_value`` = VALUENUM, ``text_value``
  = VALUE where VALUENUM is empty.
- ICUSTAYS: ``ICU_ADMISSION`` at INTIME and ``ICU_DISCHARGE`` at OUTTIME (``text_value`` =
  the first care unit).

The events come table by table (not sorted by subject and time; :func:`write_meds` sorts
them as MEDS asks). Rows that cannot be placed in time (a diagnosis of an unknown admission or of one with no
discharge time, a prescription with no start) are dropped and counted in ``report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from medtorch.ehr import schema as S
from medtorch.ehr._tables import end_of_day, find_table, first_duplicate, read_table
from medtorch.ehr.icd import DIAGNOSIS_SYSTEMS, PROCEDURE_SYSTEMS, icd_code_expr
from medtorch.errors import ConfigError, DataError

MIMIC3_TABLES = (
    "PATIENTS",
    "ADMISSIONS",
    "DIAGNOSES_ICD",
    "PROCEDURES_ICD",
    "PRESCRIPTIONS",
    "LABEVENTS",
    "ICUSTAYS",
)
MIMIC4_TABLES = tuple(t.lower() for t in MIMIC3_TABLES)
_REQUIRED = {"patients", "admissions"}
_MIMIC4_DIRS = ("hosp", "icu", "")
DEATH_POLICIES = ("exclude", "error", "discharge")


def _locate(root: Path, name: str, subdirs: tuple[str, ...], source: str) -> Path:
    path = find_table(root, name, subdirs)
    if path is None:
        raise DataError(
            f"expected {name.upper()}.csv.gz (or .csv, lower-case too) under {root}, got no such "
            f"file in the {source} folder; point the reader at the folder that holds the tables"
        )
    return path


def _out(frame: pl.DataFrame, code: pl.Expr, time: str | pl.Expr, **extra: pl.Expr) -> pl.DataFrame:
    t = pl.col(time) if isinstance(time, str) else time
    return frame.select(
        pl.col("subject_id"),
        t.cast(pl.Datetime("us")).alias("time"),
        code.alias("code"),
        extra.get("numeric_value", pl.lit(None, pl.Float32))
        .cast(pl.Float32)
        .alias("numeric_value"),
        extra.get("text_value", pl.lit(None, pl.String)).cast(pl.String).alias("text_value"),
        extra.get("hadm_id", pl.lit(None, pl.Int64)).cast(pl.Int64).alias("hadm_id"),
    )


def _count(report: dict[str, Any], key: str, n: int) -> None:
    if n:
        report.setdefault("dropped", {})[key] = report.get("dropped", {}).get(key, 0) + n


def _admissions(
    path: Path, table: str, policy: str, report: dict[str, Any]
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    kinds = {
        "subject_id": "int",
        "hadm_id": "int",
        "admittime": "datetime",
        "dischtime": "datetime",
        "deathtime": "datetime",
        "hospital_expire_flag": "flag",
    }
    adm = read_table(
        path,
        table,
        kinds,
        required=("subject_id", "hadm_id", "admittime", "dischtime"),
        not_null=("subject_id", "hadm_id", "admittime"),
    )
    first_duplicate(adm, "hadm_id", table, path)
    if "deathtime" not in adm.columns:
        adm = adm.with_columns(pl.lit(None, pl.Datetime("us")).alias("deathtime"))
    if "hospital_expire_flag" not in adm.columns:
        adm = adm.with_columns(pl.col("deathtime").is_not_null().alias("hospital_expire_flag"))
    no_time = adm.filter(pl.col("hospital_expire_flag") & pl.col("deathtime").is_null())
    report["death_flag_without_time"] = no_time.height
    notes: list[pl.DataFrame] = []
    if no_time.height:
        if policy == "error":
            raise DataError(
                f"expected a DEATHTIME where HOSPITAL_EXPIRE_FLAG is 1, got an empty cell in {table} "
                f"({path.name}) row {no_time['_row'][0]} ({no_time.height} such rows); set "
                "death_flag_without_time='exclude' to count them as excluded admissions"
            )
        if policy == "discharge":
            adm = adm.with_columns(
                pl.when(pl.col("hospital_expire_flag") & pl.col("deathtime").is_null())
                .then(pl.col("dischtime"))
                .otherwise(pl.col("deathtime"))
                .alias("deathtime")
            )
        else:
            notes.append(
                _out(
                    no_time,
                    pl.lit(S.DEATH_FLAG_WITHOUT_TIME),
                    "admittime",
                    hadm_id=pl.col("hadm_id"),
                )
            )
    report["admissions"] = adm.height
    report["admissions_without_dischtime"] = int(adm["dischtime"].null_count())
    events = [
        _out(adm, pl.lit(S.ADMISSION), "admittime", hadm_id=pl.col("hadm_id")),
        _out(
            adm.filter(pl.col("dischtime").is_not_null()),
            pl.lit(S.DISCHARGE),
            "dischtime",
            hadm_id=pl.col("hadm_id"),
        ),
        *notes,
    ]
    return adm, events


def _deaths(adm: pl.DataFrame, patients: pl.DataFrame) -> pl.DataFrame:
    in_hosp = (
        adm.filter(pl.col("deathtime").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("deathtime").max(), pl.col("hadm_id").sort_by("deathtime").last())
    )
    both = patients.select("subject_id", "dod").join(
        in_hosp, on="subject_id", how="full", coalesce=True
    )
    died = both.filter(pl.col("deathtime").is_not_null() | pl.col("dod").is_not_null())
    return _out(
        died,
        pl.lit(S.DEATH),
        pl.coalesce("deathtime", "dod"),
        hadm_id=pl.col("hadm_id"),
    )


def _icd_events(
    frame: pl.DataFrame,
    adm: pl.DataFrame,
    prefix: str,
    system: pl.Expr,
    report: dict[str, Any],
    table: str,
    time: pl.Expr | None = None,
) -> pl.DataFrame:
    has_code = pl.col("icd_code").is_not_null() & (pl.col("icd_code").str.strip_chars() != "")
    _count(report, f"{table}: empty ICD code", frame.height - frame.filter(has_code).height)
    frame = frame.filter(has_code)
    joined = frame.join(adm.select("hadm_id", "dischtime"), on="hadm_id", how="left")
    t = pl.col("dischtime") if time is None else time
    joined = joined.with_columns(t.alias("_t"))
    _count(report, f"{table}: no admission with a discharge time", int(joined["_t"].null_count()))
    joined = joined.filter(pl.col("_t").is_not_null())
    return _out(joined, icd_code_expr("icd_code", system, prefix), "_t", hadm_id=pl.col("hadm_id"))


def _version_system(systems: dict[int, str]) -> pl.Expr:
    return pl.col("icd_version").replace_strict(systems, default=None, return_dtype=pl.String)


def _check_versions(frame: pl.DataFrame, table: str) -> None:
    bad = frame.filter(~pl.col("icd_version").is_in([9, 10]))
    if bad.height:
        raise DataError(
            f"expected ICD_VERSION 9 or 10, got {bad['icd_version'][0]!r} in {table} row "
            f"{bad['_row'][0]} ({bad.height} such rows); fix or remove those rows"
        )


def _read(
    root: Path | str,
    tables: Sequence[str] | None,
    *,
    version: int,
    death_flag_without_time: str,
    drug_code: str,
    report: dict[str, Any] | None,
) -> pl.DataFrame:
    root = Path(root)
    source = "MIMIC-III" if version == 3 else "MIMIC-IV"
    if death_flag_without_time not in DEATH_POLICIES:
        raise ConfigError(
            f"expected one of {list(DEATH_POLICIES)}, got {death_flag_without_time!r} in "
            "death_flag_without_time; pick one"
        )
    if drug_code not in ("drug", "ndc"):
        raise ConfigError(f"expected 'drug' or 'ndc', got {drug_code!r} in drug_code; pick one")
    if not root.is_dir():
        raise DataError(f"expected a {source} folder, got {str(root)!r}; check the path")
    wanted = {t.lower() for t in (tables or MIMIC3_TABLES)} | _REQUIRED
    known = {t.lower() for t in MIMIC3_TABLES}
    unknown = wanted - known
    if unknown:
        raise ConfigError(
            f"expected tables among {sorted(known)}, got {sorted(unknown)} in tables; drop them"
        )
    subdirs = ("",) if version == 3 else _MIMIC4_DIRS
    rep: dict[str, Any] = {} if report is None else report
    rep["source"] = source

    def locate(name: str) -> tuple[Path, str]:
        path = _locate(root, name, subdirs, source)
        return path, name.upper() if version == 3 else name

    # patients
    path, table = locate("patients")
    if version == 3:
        pat = read_table(
            path,
            table,
            {"subject_id": "int", "gender": "str", "dob": "datetime", "dod": "datetime"},
            required=("subject_id", "gender", "dob"),
            not_null=("subject_id",),
        )
        birth = pl.col("dob")
    else:
        pat = read_table(
            path,
            table,
            {
                "subject_id": "int",
                "gender": "str",
                "anchor_age": "int",
                "anchor_year": "int",
                "dod": "datetime",
            },
            required=("subject_id", "gender", "anchor_age", "anchor_year"),
            not_null=("subject_id",),
        )
        birth = pl.datetime(pl.col("anchor_year") - pl.col("anchor_age"), 1, 1)
    first_duplicate(pat, "subject_id", table, path)
    if "dod" not in pat.columns:
        pat = pat.with_columns(pl.lit(None, pl.Datetime("us")).alias("dod"))
    rep["patients"] = pat.height
    events: list[pl.DataFrame] = [
        _out(pat.filter(birth.is_not_null()), pl.lit(S.BIRTH), birth),
        _out(
            pat.filter(pl.col("gender").is_not_null()),
            pl.concat_str([pl.lit("GENDER//"), pl.col("gender").str.strip_chars()]),
            pl.lit(None, pl.Datetime("us")),
        ),
    ]
    # admissions
    path, table = locate("admissions")
    adm, adm_events = _admissions(path, table, death_flag_without_time, rep)
    if death_flag_without_time == "discharge":
        _count(
            rep,
            f"{table}: death flag without DEATHTIME, DISCHTIME used",
            rep["death_flag_without_time"],
        )
    events += adm_events
    events.append(_deaths(adm, pat))

    if "diagnoses_icd" in wanted:
        path, table = locate("diagnoses_icd")
        if version == 3:
            dx = read_table(
                path, table, {"subject_id": "int", "hadm_id": "int", "icd9_code": "str"}
            )
            dx = dx.rename({"icd9_code": "icd_code"})
            system = pl.lit(DIAGNOSIS_SYSTEMS[9])
        else:
            dx = read_table(
                path,
                table,
                {"subject_id": "int", "hadm_id": "int", "icd_code": "str", "icd_version": "int"},
            )
            _check_versions(dx, table)
            system = _version_system(DIAGNOSIS_SYSTEMS)
        events.append(_icd_events(dx, adm, "DIAGNOSIS", system, rep, table))
    if "procedures_icd" in wanted:
        path, table = locate("procedures_icd")
        if version == 3:
            px = read_table(
                path, table, {"subject_id": "int", "hadm_id": "int", "icd9_code": "str"}
            )
            px = px.rename({"icd9_code": "icd_code"})
            events.append(
                _icd_events(px, adm, "PROCEDURE", pl.lit(PROCEDURE_SYSTEMS[9]), rep, table)
            )
        else:
            px = read_table(
                path,
                table,
                {
                    "subject_id": "int",
                    "hadm_id": "int",
                    "icd_code": "str",
                    "icd_version": "int",
                    "chartdate": "date",
                },
                required=("subject_id", "hadm_id", "icd_code", "icd_version"),
            )
            _check_versions(px, table)
            if "chartdate" not in px.columns:
                px = px.with_columns(pl.lit(None, pl.Datetime("us")).alias("chartdate"))
            time = pl.min_horizontal(pl.coalesce(end_of_day("chartdate"), "dischtime"), "dischtime")
            events.append(
                _icd_events(
                    px, adm, "PROCEDURE", _version_system(PROCEDURE_SYSTEMS), rep, table, time
                )
            )
    if "prescriptions" in wanted:
        path, table = locate("prescriptions")
        start = "startdate" if version == 3 else "starttime"
        rx_kinds = {"subject_id": "int", "hadm_id": "int", start: "datetime", "drug": "str"}
        if drug_code == "ndc":
            rx_kinds["ndc"] = "str"
        rx = read_table(path, table, rx_kinds, required=("subject_id", "hadm_id", start, "drug"))
        if "ndc" not in rx.columns:
            rx = rx.with_columns(pl.lit(None, pl.String).alias("ndc"))
        drug = pl.col("drug").str.strip_chars()
        ndc = pl.col("ndc").str.strip_chars()
        if drug_code == "ndc":
            name = (
                pl.when(ndc.is_not_null() & (ndc != "") & (ndc != "0"))
                .then(pl.concat_str([pl.lit("NDC//"), ndc]))
                .otherwise(drug)
            )
        else:
            name = drug
        rx = rx.with_columns(name.alias("_name"))
        missing = rx.filter(
            pl.col("_name").is_null() | (pl.col("_name") == "") | pl.col(start).is_null()
        )
        _count(rep, f"{table}: no drug or no start time", missing.height)
        rx = rx.filter(
            pl.col("_name").is_not_null() & (pl.col("_name") != "") & pl.col(start).is_not_null()
        )
        if version == 3:
            rx = rx.join(adm.select("hadm_id", "dischtime"), on="hadm_id", how="left")
            time = pl.min_horizontal(end_of_day(start), pl.coalesce("dischtime", end_of_day(start)))
        else:
            time = pl.col(start)
        events.append(
            _out(
                rx,
                pl.concat_str([pl.lit("MEDICATION//"), pl.col("_name")]),
                time,
                hadm_id=pl.col("hadm_id"),
            )
        )
    if "labevents" in wanted:
        path, table = locate("labevents")
        lab = read_table(
            path,
            table,
            {
                "subject_id": "int",
                "hadm_id": "int",
                "itemid": "int",
                "charttime": "datetime",
                "valuenum": "float",
                "value": "str",
            },
            required=("subject_id", "itemid", "charttime"),
        )
        for col, dtype in (("hadm_id", pl.Int64), ("valuenum", pl.Float32), ("value", pl.String)):
            if col not in lab.columns:
                lab = lab.with_columns(pl.lit(None, dtype).alias(col))
        _count(rep, f"{table}: no CHARTTIME", int(lab["charttime"].null_count()))
        lab = lab.filter(pl.col("charttime").is_not_null() & pl.col("itemid").is_not_null())
        events.append(
            _out(
                lab,
                pl.concat_str([pl.lit("LAB//"), pl.col("itemid").cast(pl.String)]),
                "charttime",
                numeric_value=pl.col("valuenum"),
                text_value=pl.when(pl.col("valuenum").is_null()).then(pl.col("value")),
                hadm_id=pl.col("hadm_id"),
            )
        )
    if "icustays" in wanted:
        path, table = locate("icustays")
        icu = read_table(
            path,
            table,
            {
                "subject_id": "int",
                "hadm_id": "int",
                "intime": "datetime",
                "outtime": "datetime",
                "first_careunit": "str",
            },
            required=("subject_id", "hadm_id", "intime", "outtime"),
        )
        if "first_careunit" not in icu.columns:
            icu = icu.with_columns(pl.lit(None, pl.String).alias("first_careunit"))
        unit = pl.col("first_careunit")
        events.append(
            _out(
                icu.filter(pl.col("intime").is_not_null()),
                pl.lit(S.ICU_ADMISSION),
                "intime",
                text_value=unit,
                hadm_id=pl.col("hadm_id"),
            )
        )
        events.append(
            _out(
                icu.filter(pl.col("outtime").is_not_null()),
                pl.lit(S.ICU_DISCHARGE),
                "outtime",
                text_value=unit,
                hadm_id=pl.col("hadm_id"),
            )
        )
    out = pl.concat(events, how="vertical", rechunk=False)
    del events
    # table by table, not sorted: sorting 10^7 rows would copy them all (write_meds sorts)
    rep["events"] = out.height
    rep["subjects"] = out["subject_id"].n_unique()
    return out


def read_mimic3(
    root: Path | str,
    tables: Sequence[str] | None = None,
    *,
    death_flag_without_time: str = "exclude",
    drug_code: str = "drug",
    report: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """MIMIC-III tables (CSV or CSV.gz, upper- or lower-case names) under ``root`` as the
    canonical event table (see the module docstring for what each table becomes).

    ``tables``: which of :data:`MIMIC3_TABLES` to read (PATIENTS and ADMISSIONS always);
    ``report``: a dict that receives counts (rows read, rows dropped and why).

    >>> events = read_mimic3("$MEDTORCH_DATA/mimic3_demo")  # doctest: +SKIP
    """
    return _read(
        root,
        tables,
        version=3,
        death_flag_without_time=death_flag_without_time,
        drug_code=drug_code,
        report=report,
    )


def read_mimic4(
    root: Path | str,
    tables: Sequence[str] | None = None,
    *,
    death_flag_without_time: str = "exclude",
    drug_code: str = "drug",
    report: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """MIMIC-IV ``hosp/`` and ``icu/`` tables under ``root`` as the canonical event table.
    ``icd_version`` 9/10 selects ``ICD9CM``/``ICD10CM`` (diagnoses) and
    ``ICD9PCS``/``ICD10PCS`` (procedures). ``icu/chartevents`` is not read."""
    return _read(
        root,
        tables,
        version=4,
        death_flag_without_time=death_flag_without_time,
        drug_code=drug_code,
        report=report,
    )


def _dictionary(
    path: Path | None, table: str, code: pl.Expr, desc: pl.Expr, kinds: dict[str, str]
) -> pl.DataFrame | None:
    if path is None:
        return None
    frame = read_table(path, table, kinds)
    return frame.select(code.alias("code"), desc.cast(pl.String).alias("description")).unique(
        "code", keep="first"
    )


def mimic_codes(root: Path | str, *, version: int = 3) -> pl.DataFrame:
    """Readable names of the codes (``code``, ``description``) from the D_* dictionaries
    (D_ICD_DIAGNOSES, D_ICD_PROCEDURES, D_LABITEMS; MIMIC-IV: d_icd_diagnoses,
    d_icd_procedures, d_labitems), for reports. Dictionaries that are absent are skipped."""
    root = Path(root)
    subdirs = ("",) if version == 3 else _MIMIC4_DIRS
    parts: list[pl.DataFrame] = []
    lab = _dictionary(
        find_table(root, "d_labitems", subdirs),
        "D_LABITEMS",
        pl.concat_str([pl.lit("LAB//"), pl.col("itemid")]),
        pl.concat_str(
            [pl.col("label"), pl.lit(" ("), pl.col("fluid"), pl.lit(")")], ignore_nulls=True
        ),
        {"itemid": "str", "label": "str", "fluid": "str"},
    )
    if lab is not None:
        parts.append(lab)
    for name, prefix, systems in (
        ("d_icd_diagnoses", "DIAGNOSIS", DIAGNOSIS_SYSTEMS),
        ("d_icd_procedures", "PROCEDURE", PROCEDURE_SYSTEMS),
    ):
        path = find_table(root, name, subdirs)
        if path is None:
            continue
        if version == 3:
            frame = read_table(path, name.upper(), {"icd9_code": "str", "long_title": "str"})
            parts.append(
                frame.select(
                    icd_code_expr("icd9_code", systems[9], prefix).alias("code"),
                    pl.col("long_title").alias("description"),
                ).unique("code", keep="first")
            )
        else:
            frame = read_table(
                path, name, {"icd_code": "str", "icd_version": "int", "long_title": "str"}
            )
            parts.append(
                frame.select(
                    icd_code_expr("icd_code", _version_system(systems), prefix).alias("code"),
                    pl.col("long_title").alias("description"),
                ).unique("code", keep="first")
            )
    if not parts:
        return pl.DataFrame(schema={"code": pl.String, "description": pl.String})
    return pl.concat(parts).unique("code", keep="first").sort("code")

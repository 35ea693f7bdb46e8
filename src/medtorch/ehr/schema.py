"""The canonical event table (MEDS) and the label table (MEDS label schema).

Every reader turns its source into one event table with these columns:

========================  ================  ==========================================
column                    dtype             meaning
========================  ================  ==========================================
``subject_id``            Int64             the patient
``time``                  Datetime("us")    when; null for static facts (``GENDER//F``)
``code``                  String            ``DIAGNOSIS//ICD9CM//4019``, ``LAB//50912``...
``numeric_value``         Float32           the value, if numeric (null otherwise)
``text_value``            String            the value, if text (null otherwise)
``hadm_id`` (optional)    Int64             the hospital admission, where the source has it
========================  ================  ==========================================

Reserved codes that the tasks read: ``MEDS_BIRTH``, ``MEDS_DEATH``, ``HOSPITAL_ADMISSION``
and ``HOSPITAL_DISCHARGE`` (a code equal to one of these or starting with it and ``//``,
as the MEDS MIMIC-IV ETL writes ``HOSPITAL_ADMISSION//URGENT//...``), and codes starting
with ``MEDTORCH_EXCLUDE//``: a reader's note that a row could not be read (for example a
death flag with no death time), which the tasks turn into counted exclusions.
"""

from __future__ import annotations

import polars as pl

from medtorch.errors import DataError

#: Bump whenever a reader, a task or the cache layout changes what it writes: every cache
#: written under an older version is rebuilt, never read.
EHR_CACHE_VERSION = 1

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "time": pl.Datetime("us"),
    "code": pl.String(),
    "numeric_value": pl.Float32(),
    "text_value": pl.String(),
}
OPTIONAL_EVENT_COLUMNS: dict[str, pl.DataType] = {"hadm_id": pl.Int64()}

LABEL_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "prediction_time": pl.Datetime("us"),
}
LABEL_VALUE_COLUMNS = ("boolean_value", "integer_value", "float_value", "categorical_value")

BIRTH = "MEDS_BIRTH"
DEATH = "MEDS_DEATH"
ADMISSION = "HOSPITAL_ADMISSION"
DISCHARGE = "HOSPITAL_DISCHARGE"
ICU_ADMISSION = "ICU_ADMISSION"
ICU_DISCHARGE = "ICU_DISCHARGE"
EXCLUDE_PREFIX = "MEDTORCH_EXCLUDE//"
#: A reader found a death flag set with no death time for this admission (``hadm_id``).
DEATH_FLAG_WITHOUT_TIME = EXCLUDE_PREFIX + "DEATH_FLAG_WITHOUT_TIME"


def is_code(name: str) -> pl.Expr:
    """True where ``code`` is ``name`` or ``name//...`` (MEDS codes carry suffixes)."""
    code = pl.col("code")
    return (code == name) | code.str.starts_with(name + "//")


def structural_codes() -> pl.Expr:
    """True for the codes that mark the timeline rather than describe the patient: birth,
    death, hospital admission/discharge and medtorch's exclusion notes. Task inputs leave
    them out (the death code is the label)."""
    return (
        is_code(BIRTH)
        | is_code(DEATH)
        | is_code(ADMISSION)
        | is_code(DISCHARGE)
        | pl.col("code").str.starts_with(EXCLUDE_PREFIX)
    )


def empty_events(with_hadm: bool = True) -> pl.DataFrame:
    """An event table with no rows and the canonical schema."""
    schema = dict(EVENT_SCHEMA)
    if with_hadm:
        schema.update(OPTIONAL_EVENT_COLUMNS)
    return pl.DataFrame(schema=schema)


def conform_events(frame: pl.DataFrame | pl.LazyFrame, where: str) -> pl.LazyFrame:
    """The canonical columns, in order, with their dtypes; extra columns are kept after them.

    Missing ``numeric_value``/``text_value`` are added as nulls; a missing ``subject_id``,
    ``time`` or ``code``, or a column of the wrong kind, is a :class:`DataError` naming it.
    """
    lf = frame.lazy()
    names = lf.collect_schema()
    for col in ("subject_id", "time", "code"):
        if col not in names:
            raise DataError(
                f"expected a column {col!r}, got columns {list(names)} in {where}; "
                "an event table needs subject_id, time and code (MEDS schema)"
            )
    exprs = []
    for col, dtype in {**EVENT_SCHEMA, **OPTIONAL_EVENT_COLUMNS}.items():
        if col not in names:
            if col in EVENT_SCHEMA:
                exprs.append(pl.lit(None, dtype=dtype).alias(col))
            continue
        got = names[col]
        ok = (
            (dtype == pl.Int64() and got.is_integer())
            or (dtype == pl.Float32() and (got.is_numeric() or got == pl.Null()))
            or (dtype == pl.String() and got in (pl.String(), pl.Categorical(), pl.Null()))
            or (
                isinstance(dtype, pl.Datetime)
                and (isinstance(got, pl.Datetime) or got == pl.Date())
            )
        )
        if not ok:
            raise DataError(
                f"expected column {col!r} of type {dtype}, got {got} in {where}; "
                "convert it (MEDS: subject_id int64, time timestamp, code string, "
                "numeric_value float32)"
            )
        exprs.append(pl.col(col).cast(dtype))
    extra = [c for c in names if c not in EVENT_SCHEMA and c not in OPTIONAL_EVENT_COLUMNS]
    return lf.select([*exprs, *[pl.col(c) for c in extra]])

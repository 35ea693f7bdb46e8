"""Reading one source table (CSV, CSV.gz or Parquet) strictly, with errors that name the
table, the column and the row.

Column names are matched case-insensitively (MIMIC-III ships upper-case headers, MIMIC-IV
lower-case) and returned lower-case. Row numbers in messages count data rows from 1 (the
header is not a row).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from medtorch.errors import DataError

_DT_FULL = "%Y-%m-%d %H:%M:%S"
_DT_DATE = "%Y-%m-%d"

# What a column holds: "int", "float", "str", "datetime" (full or date-only), "date"
# (a day; see end_of_day), "flag" (0/1).
Kinds = dict[str, str]


def find_table(root: Path, name: str, subdirs: tuple[str, ...] = ("",)) -> Path | None:
    """The file of table ``name`` under ``root``: ``NAME.csv.gz``, ``NAME.csv``,
    ``name.csv.gz``, ``name.csv`` or ``.parquet``, in any of ``subdirs``."""
    for sub in subdirs:
        folder = root / sub if sub else root
        for stem in (name.upper(), name.lower()):
            for ext in (".csv.gz", ".csv", ".parquet"):
                path = folder / f"{stem}{ext}"
                if path.is_file():
                    return path
    return None


def scan_raw(path: Path) -> pl.LazyFrame:
    """All columns as text (CSV) or as stored (Parquet), names lower-cased."""
    if path.name.endswith(".parquet"):
        lf = pl.scan_parquet(path)
    else:
        lf = pl.scan_csv(path, infer_schema=False, quote_char='"')
    try:
        names = lf.collect_schema().names()
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise DataError(
            f"expected a readable CSV or Parquet table, got {type(exc).__name__} in {path.name}; "
            "check that the file is complete"
        ) from None
    return lf.rename({n: n.lower() for n in names})


def _typed(col: str, kind: str) -> pl.Expr:
    raw = pl.col(col)
    if kind == "int":
        return raw.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)
    if kind == "float":
        return raw.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).cast(pl.Float32)
    if kind in ("datetime", "date"):
        text = raw.cast(pl.String).str.strip_chars()
        return pl.coalesce(
            text.str.to_datetime(_DT_FULL, time_unit="us", strict=False),
            text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False),
            text.str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us", strict=False),
            text.str.to_datetime(_DT_DATE, time_unit="us", strict=False),
        )
    if kind == "flag":
        text = raw.cast(pl.String).str.strip_chars()
        return pl.when(text == "1").then(True).when(text == "0").then(False).otherwise(None)
    return raw.cast(pl.String)


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "datetime": "a timestamp like 2164-10-23 21:09:00",
    "date": "a date like 2164-10-23",
    "flag": "0 or 1",
}


def read_table(
    path: Path,
    table: str,
    kinds: Kinds,
    *,
    required: tuple[str, ...] | None = None,
    not_null: tuple[str, ...] = (),
) -> pl.DataFrame:
    """The columns of ``kinds`` from ``path``, typed. A missing required column, a value
    that does not parse (for example a death flag written as text, or a timestamp that is
    not one) or a null in a ``not_null`` column raises one :class:`DataError` naming the
    table, the column and the row."""
    lf = scan_raw(path).with_row_index("_row", offset=1)
    names = set(lf.collect_schema().names())
    required = tuple(kinds) if required is None else required
    for col in required:
        if col not in names:
            raise DataError(
                f"expected a column {col.upper()}, got columns {sorted(n.upper() for n in names - {'_row'})} "
                f"in {table} ({path.name}); is this the right file?"
            )
    present = [c for c in kinds if c in names]
    exprs: list[pl.Expr] = [pl.col("_row")]
    checks: list[pl.Expr] = []
    for col in present:
        kind = kinds[col]
        exprs.append(_typed(col, kind).alias(col))
        if kind != "str":
            raw_text = pl.col(col).cast(pl.String).str.strip_chars()
            bad = raw_text.is_not_null() & (raw_text != "") & _typed(col, kind).is_null()
            exprs.append(bad.alias(f"_bad_{col}"))
            exprs.append(pl.col(col).cast(pl.String).alias(f"_raw_{col}"))
            checks.append(pl.col(f"_bad_{col}"))
    frame = lf.select(exprs).collect(engine="streaming")
    for col in present:
        if kinds[col] == "str":
            continue
        bad_rows = frame.filter(pl.col(f"_bad_{col}"))
        if bad_rows.height:
            row = bad_rows.row(0, named=True)
            raise DataError(
                f"expected {_EXPECTED[kinds[col]]}, got {row[f'_raw_{col}']!r} in {table} "
                f"({path.name}) column {col.upper()} row {row['_row']} ({bad_rows.height} such rows); "
                "fix or remove those rows"
            )
    for col in not_null:
        if col in present:
            nulls = frame.filter(pl.col(col).is_null())
            if nulls.height:
                raise DataError(
                    f"expected a value, got an empty cell in {table} ({path.name}) column "
                    f"{col.upper()} row {nulls['_row'][0]} ({nulls.height} such rows); "
                    "fix or remove those rows"
                )
    drop = [c for c in frame.columns if c.startswith("_bad_") or c.startswith("_raw_")]
    return frame.drop(drop)


def end_of_day(col: str) -> pl.Expr:
    """A day-only timestamp moved to the last microsecond of its day, so that a cut at
    hour 48 never sees an event of later that day (MIMIC-III STARTDATE, MIMIC-IV chartdate)."""
    return pl.col(col).dt.truncate("1d") + pl.duration(days=1) - pl.duration(microseconds=1)


def first_duplicate(frame: pl.DataFrame, key: str, table: str, path: Path) -> None:
    """A :class:`DataError` if ``key`` repeats, naming the value and both rows."""
    dup = frame.filter(pl.col(key).is_duplicated() & pl.col(key).is_not_null())
    if dup.height:
        value = dup[key][0]
        rows = dup.filter(pl.col(key) == value)["_row"].to_list()
        raise DataError(
            f"expected one row per {key.upper()}, got {key.upper()}={value} in rows {rows} "
            f"of {table} ({path.name}) ({dup.height} duplicated rows); remove the duplicates"
        )

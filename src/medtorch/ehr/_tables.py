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
    """The lenient parse of a text column (spaces stripped, every accepted format tried)."""
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


def _fast(series: pl.Series, kind: str) -> pl.Series:
    """The strict common-case parse (MIMIC's own formats); failures become null."""
    if kind == "int":
        return series.cast(pl.Int64, strict=False)
    if kind == "float":
        return series.cast(pl.Float64, strict=False).cast(pl.Float32)
    if kind in ("datetime", "date"):
        return series.str.to_datetime(_DT_FULL, time_unit="us", strict=False)
    return series.to_frame().select(_typed(series.name, kind)).to_series()


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "datetime": "a timestamp like 2164-10-23 21:09:00",
    "date": "a date like 2164-10-23",
    "flag": "0 or 1",
}


def _typed_series(series: pl.Series, kind: str) -> pl.Series:
    """``series`` (text or typed Parquet) as ``kind``; unparseable cells become null."""
    dtype = series.dtype
    if kind == "int" and dtype.is_integer():
        return series.cast(pl.Int64)
    if kind == "float" and dtype.is_numeric():
        return series.cast(pl.Float32)
    if kind in ("datetime", "date") and isinstance(dtype, pl.Datetime | pl.Date):
        return series.cast(pl.Datetime("us"))
    if kind == "flag" and (dtype == pl.Boolean or dtype.is_integer()):
        return series.cast(pl.String).to_frame().select(_typed(series.name, kind)).to_series()
    text = series.cast(pl.String)
    fast = _fast(text, kind)
    bad = text.is_not_null() & fast.is_null()
    if not bad.any():
        return fast
    return text.to_frame().select(_typed(series.name, kind)).to_series()


def _fast_expr(col: str, kind: str, dtype: pl.DataType) -> pl.Expr:
    """The strict parse of MIMIC's own formats, as a lazy expression."""
    c = pl.col(col)
    if kind == "int":
        return c.cast(pl.Int64, strict=False)
    if kind == "float":
        return c.cast(pl.Float64, strict=False).cast(pl.Float32)
    if kind in ("datetime", "date"):
        if isinstance(dtype, pl.Datetime | pl.Date):
            return c.cast(pl.Datetime("us"))
        if kind == "date":
            return pl.coalesce(
                c.str.to_datetime(_DT_DATE, time_unit="us", strict=False),
                c.str.to_datetime(_DT_FULL, time_unit="us", strict=False),
            )
        return c.str.to_datetime(_DT_FULL, time_unit="us", strict=False)
    if kind == "flag":
        text = c.cast(pl.String)
        return pl.when(text == "1").then(True).when(text == "0").then(False).otherwise(None)
    return c.cast(pl.String)


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
    table, the column and the row.

    One streaming pass parses MIMIC's own formats; only when a cell does not parse is the
    table read again, leniently (spaces, ISO ``T``, fractional seconds, date-only), to
    either accept it or name the row."""
    lf = scan_raw(path)
    schema = lf.collect_schema()
    names = set(schema.names())
    required = tuple(kinds) if required is None else required
    for col in required:
        if col not in names:
            raise DataError(
                f"expected a column {col.upper()}, got columns {sorted(n.upper() for n in names)} "
                f"in {table} ({path.name}); is this the right file?"
            )
    present = [c for c in kinds if c in names]
    parsed = [c for c in present if kinds[c] != "str"]
    typed = [_fast_expr(c, kinds[c], schema[c]).alias(f"_t_{c}") for c in parsed]
    bad = [pl.col(c).is_not_null() & pl.col(f"_t_{c}").is_null() for c in parsed]
    out = [pl.col(f"_t_{c}").alias(c) if c in parsed else pl.col(c) for c in present]
    query = lf.select(present).with_columns(typed)
    if bad:
        query = query.with_columns(pl.any_horizontal(bad).alias("_bad"))
        out.append(pl.col("_bad"))
    frame = query.select(out).collect(engine="streaming")
    if bad and frame["_bad"].any():
        return _read_table_lenient(path, table, kinds, present, not_null)
    if bad:
        frame = frame.drop("_bad")
    for col in not_null:
        if col in present and frame[col].null_count():
            first = int(frame[col].is_null().arg_true()[0])
            raise DataError(
                f"expected a value, got an empty cell in {table} ({path.name}) column "
                f"{col.upper()} row {first + 1} ({frame[col].null_count()} such rows); "
                "fix or remove those rows"
            )
    return frame.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))


def _read_table_lenient(
    path: Path,
    table: str,
    kinds: Kinds,
    present: list[str],
    not_null: tuple[str, ...],
) -> pl.DataFrame:
    raw = scan_raw(path).select(present).collect(engine="streaming")
    columns: list[pl.Series] = [
        pl.int_range(1, raw.height + 1, dtype=pl.Int64, eager=True).alias("_row")
    ]
    for col in present:
        kind = kinds[col]
        series = raw[col]
        if kind == "str":
            columns.append(series.cast(pl.String))
            continue
        typed = _typed_series(series, kind).alias(col)
        bad = series.is_not_null() & typed.is_null()
        if bad.any():
            text = series.cast(pl.String).str.strip_chars()
            bad = text.is_not_null() & (text != "") & typed.is_null()
        if bad.any():
            first = int(bad.arg_true()[0])
            raise DataError(
                f"expected {_EXPECTED[kind]}, got {series[first]!r} in {table} ({path.name}) "
                f"column {col.upper()} row {first + 1} ({int(bad.sum())} such rows); "
                "fix or remove those rows"
            )
        if col in not_null and typed.null_count():
            first = int(typed.is_null().arg_true()[0])
            raise DataError(
                f"expected a value, got an empty cell in {table} ({path.name}) column "
                f"{col.upper()} row {first + 1} ({typed.null_count()} such rows); "
                "fix or remove those rows"
            )
        columns.append(typed)
    return pl.DataFrame(columns)


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

"""MEDS dataset folders and long event tables in, MEDS folders out.

A MEDS folder (Medical Event Data Standard) is ``data/**/*.parquet`` (the events),
``metadata/dataset.json``, ``metadata/codes.parquet`` (``code``, ``description``,
``parent_codes``) and, when the dataset is split, ``metadata/subject_splits.parquet``
(``subject_id``, ``split`` in ``train`` / ``tuning`` / ``held_out``), which medtorch honours.

Any other long event table (CSV or Parquet, one row per event) is read through a column
mapping ``{"subject_id": ..., "time": ..., "code": ..., "value": ...}``: the ``value``
column goes to ``numeric_value`` where it is a number and to ``text_value`` otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from medtorch.ehr import schema as S
from medtorch.ehr._tables import _typed
from medtorch.errors import DataError

MEDS_VERSION = "0.3.3"
SPLITS = ("train", "tuning", "held_out")
EVENT_COLUMNS = ("subject_id", "time", "code", "value")


def _sort(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.sort(["subject_id", "time", "code"], nulls_last=False, maintain_order=True)


def read_meds(folder: Path | str, *, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """The events of a MEDS folder (every ``data/**/*.parquet``), in the canonical schema,
    sorted by subject, time (static facts first) and code. A file whose columns do not
    follow the MEDS schema is a :class:`DataError` naming it and the column."""
    folder = Path(folder)
    files = sorted((folder / "data").glob("**/*.parquet"))
    if not files:
        raise DataError(
            f"expected data/**/*.parquet in the MEDS folder {str(folder)!r}, got none; "
            "a MEDS folder holds its events under data/"
        )
    parts = []
    for path in files:
        where = f"MEDS file {path.relative_to(folder)}"
        try:
            lf = pl.scan_parquet(path)
            lf.collect_schema()
        except (pl.exceptions.ComputeError, OSError) as exc:
            raise DataError(
                f"expected a Parquet file, got {type(exc).__name__} in {where}; check the file"
            ) from None
        parts.append(S.conform_events(lf, where))
    out = _sort(pl.concat(parts, how="diagonal_relaxed"))
    return out if lazy else out.collect(engine="streaming")


def read_subject_splits(folder: Path | str) -> pl.DataFrame | None:
    """``metadata/subject_splits.parquet`` (``subject_id``, ``split``), or None when absent.
    A split name outside train/tuning/held_out, or a subject in two splits, is an error."""
    path = Path(folder) / "metadata" / "subject_splits.parquet"
    if not path.is_file():
        return None
    frame = pl.read_parquet(path)
    for col in ("subject_id", "split"):
        if col not in frame.columns:
            raise DataError(
                f"expected a column {col!r}, got {frame.columns} in {path.name}; "
                "MEDS subject_splits has subject_id and split"
            )
    frame = frame.select(pl.col("subject_id").cast(pl.Int64), pl.col("split").cast(pl.String))
    bad = frame.filter(~pl.col("split").is_in(SPLITS))
    if bad.height:
        raise DataError(
            f"expected a split in {list(SPLITS)}, got {bad['split'][0]!r} in {path.name} "
            f"(subject {bad['subject_id'][0]}); rename it"
        )
    dup = frame.filter(pl.col("subject_id").is_duplicated())
    if dup.height:
        raise DataError(
            f"expected each subject in one split, got subject {dup['subject_id'][0]} in "
            f"{sorted(set(dup.filter(pl.col('subject_id') == dup['subject_id'][0])['split']))} "
            f"in {path.name}; keep one row per subject"
        )
    return frame


def read_dataset_json(folder: Path | str) -> dict[str, Any]:
    """``metadata/dataset.json`` as a dict ({} when absent)."""
    path = Path(folder) / "metadata" / "dataset.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"expected JSON, got {exc.msg} in {path.name}; fix the file") from None
    if not isinstance(data, dict):
        raise DataError(
            f"expected a JSON object, got {type(data).__name__} in {path.name}; fix the file"
        )
    return data


def read_event_table(
    path: Path | str,
    columns: Mapping[str, str] | None = None,
    *,
    time_format: str | None = None,
    lazy: bool = False,
) -> pl.DataFrame | pl.LazyFrame:
    """A long CSV/Parquet event table as the canonical event table.

    ``columns`` maps the canonical names to the table's: ``subject_id``, ``time``, ``code``
    (required) and ``value`` (optional; numbers -> ``numeric_value``, other text ->
    ``text_value``); also ``hadm_id``, ``numeric_value``, ``text_value`` when the table has
    them apart. Unmapped names default to themselves. A mapped column that is not in the
    table, an id that is not an integer or a time that does not parse is a
    :class:`DataError` naming the column and the row.

    >>> read_event_table("events.parquet", {"value": "value"})  # doctest: +SKIP
    """
    path = Path(path)
    mapping = {k: k for k in ("subject_id", "time", "code")}
    unknown = set(columns or {}) - {*EVENT_COLUMNS, "hadm_id", "numeric_value", "text_value"}
    if unknown:
        raise DataError(
            f"expected keys among subject_id, time, code, value, hadm_id, numeric_value, "
            f"text_value, got {sorted(unknown)} in the column mapping; rename them"
        )
    mapping.update(columns or {})
    if not path.is_file():
        raise DataError(f"expected an event table file, got {str(path)!r}; check the path")
    if path.name.endswith(".parquet"):
        lf = pl.scan_parquet(path)
    else:
        lf = pl.scan_csv(path, infer_schema=False)
    names = lf.collect_schema()
    for key, col in mapping.items():
        if col not in names:
            raise DataError(
                f"expected a column {col!r} (mapped to {key}), got columns {list(names)} in "
                f"{path.name}; fix data.columns.{key}"
            )
    lf = lf.with_row_index("_row", offset=1)
    sel: list[pl.Expr] = [pl.col("_row")]
    checks: dict[str, str] = {}

    def typed(key: str, kind: str) -> pl.Expr:
        col = mapping[key]
        dtype = names[col]
        if kind == "int" and dtype.is_integer():
            return pl.col(col).cast(pl.Int64)
        if kind == "datetime" and isinstance(dtype, pl.Datetime | pl.Date):
            return pl.col(col).cast(pl.Datetime("us"))
        if kind == "datetime" and time_format:
            return (
                pl.col(col)
                .cast(pl.String)
                .str.to_datetime(time_format, time_unit="us", strict=False)
            )
        checks[key] = kind
        return _typed(col, kind)

    sel.append(typed("subject_id", "int").alias("subject_id"))
    sel.append(typed("time", "datetime").alias("time"))
    sel.append(pl.col(mapping["code"]).cast(pl.String).alias("code"))
    if "numeric_value" in mapping:
        sel.append(
            pl.col(mapping["numeric_value"]).cast(pl.Float32, strict=False).alias("numeric_value")
        )
    if "text_value" in mapping:
        sel.append(pl.col(mapping["text_value"]).cast(pl.String).alias("text_value"))
    if "value" in mapping:
        value = pl.col(mapping["value"])
        if names[mapping["value"]].is_numeric():
            sel.append(value.cast(pl.Float32).alias("numeric_value"))
        else:
            text = value.cast(pl.String).str.strip_chars()
            number = text.cast(pl.Float64, strict=False).cast(pl.Float32)
            sel.append(number.alias("numeric_value"))
            sel.append(pl.when(number.is_null()).then(text).alias("text_value"))
    if "hadm_id" in mapping:
        sel.append(typed("hadm_id", "int").alias("hadm_id"))
    for key in checks:
        col = mapping[key]
        sel.append(pl.col(col).cast(pl.String).alias(f"_raw_{key}"))
    frame = lf.select(sel).collect(engine="streaming")
    for key, kind in checks.items():
        raw = pl.col(f"_raw_{key}")
        bad = frame.filter(
            raw.is_not_null() & (raw.str.strip_chars() != "") & pl.col(key).is_null()
        )
        if key in ("subject_id",):
            bad = frame.filter(pl.col(key).is_null())
        if bad.height:
            what = {"int": "an integer", "datetime": "a timestamp like 2164-10-23 21:09:00"}[kind]
            hint = "; set time_format" if kind == "datetime" else ""
            raise DataError(
                f"expected {what}, got {bad[f'_raw_{key}'][0]!r} in {path.name} column "
                f"{mapping[key]!r} row {bad['_row'][0]} ({bad.height} such rows); fix those rows{hint}"
            )
    nocode = frame.filter(pl.col("code").is_null())
    if nocode.height:
        raise DataError(
            f"expected a code, got an empty cell in {path.name} column {mapping['code']!r} row "
            f"{nocode['_row'][0]} ({nocode.height} such rows); fix or remove those rows"
        )
    frame = frame.drop([c for c in frame.columns if c.startswith("_")])
    out = _sort(S.conform_events(frame, path.name))
    return out if lazy else out.collect()


def write_meds(
    events: pl.DataFrame | pl.LazyFrame,
    out_dir: Path | str,
    *,
    dataset_name: str = "medtorch",
    codes: pl.DataFrame | None = None,
    subject_splits: pl.DataFrame | None = None,
    shard_subjects: int = 50_000,
) -> Path:
    """Write ``events`` as a MEDS folder that :func:`read_meds` reads back identically:
    ``data/<n>.parquet`` (sorted by subject and time, at most ``shard_subjects`` subjects a
    shard), ``metadata/dataset.json``, ``metadata/codes.parquet`` (every code in the data,
    with ``description`` from ``codes`` where given) and ``metadata/subject_splits.parquet``
    when ``subject_splits`` is given. Returns ``out_dir``."""
    from medtorch import __version__

    out = Path(out_dir)
    frame = _sort(S.conform_events(events, "write_meds events")).collect()
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("**/*.parquet"):
        old.unlink()
    subjects = frame["subject_id"].unique().sort()
    for i in range(0, max(len(subjects), 1), shard_subjects):
        chunk = subjects[i : i + shard_subjects]
        part = (
            frame.filter(pl.col("subject_id").is_in(chunk.implode()))
            if len(subjects) > shard_subjects
            else frame
        )
        part.write_parquet(out / "data" / f"{i // shard_subjects}.parquet")
    used = frame.select(pl.col("code").unique().sort())
    if codes is not None and "description" in codes.columns:
        used = used.join(
            codes.select("code", pl.col("description").cast(pl.String)), on="code", how="left"
        )
    else:
        used = used.with_columns(pl.lit(None, pl.String).alias("description"))
    used = used.with_columns(pl.lit([], pl.List(pl.String)).alias("parent_codes"))
    used.write_parquet(out / "metadata" / "codes.parquet")
    meta = {
        "dataset_name": dataset_name,
        "dataset_version": "",
        "etl_name": "medtorch",
        "etl_version": __version__,
        "meds_version": MEDS_VERSION,
    }
    (out / "metadata" / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    if subject_splits is not None:
        subject_splits.select(
            pl.col("subject_id").cast(pl.Int64), pl.col("split").cast(pl.String)
        ).write_parquet(out / "metadata" / "subject_splits.parquet")
    return out

"""Readable names of codes, for reports: ``DIAGNOSIS//ICD9CM//4019`` -> "Unspecified essential
hypertension".

The names come from the source's own dictionaries, read only when a run asks for them and
only for the codes it asks about: MIMIC-III's D_ICD_DIAGNOSES, D_ICD_PROCEDURES and
D_LABITEMS, MIMIC-IV's ``hosp/`` d_icd_diagnoses, d_icd_procedures and d_labitems
(:func:`medtorch.ehr.mimic.mimic_codes`), a MEDS folder's ``metadata/codes.parquet``
(its ``description`` column). A source without a dictionary, a long event table, or a code
the dictionary lacks keeps its code as it is (no name, no error).

Codes are matched by a normalised key, so one spelling finds the other: upper case, no dots
or spaces in an ICD code, and the MEDS MIMIC-IV ETL's ``DIAGNOSIS//ICD//9//4019`` read as
``DIAGNOSIS//ICD9CM//4019`` (procedures: ``ICD9PCS``/``ICD10PCS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl

_ICD = r"^(DIAGNOSIS|PROCEDURE)//"


def code_key(code: pl.Expr) -> pl.Expr:
    """Polars: the normalised key of a code column (see the module doc); codes that are no
    ICD diagnosis or procedure are kept as they are."""
    etl = (
        code.str.replace(r"^DIAGNOSIS//ICD//(9|10)//", "DIAGNOSIS//ICD${1}CM//")
        .str.replace(r"^PROCEDURE//ICD//(9|10)//", "PROCEDURE//ICD${1}PCS//")
        .str.strip_chars()
    )
    head = etl.str.extract(r"^((?:DIAGNOSIS|PROCEDURE)//[^/]+//)", 1)
    tail = etl.str.extract(r"^(?:DIAGNOSIS|PROCEDURE)//[^/]+//(.*)$", 1)
    icd = pl.concat_str(
        [head.str.to_uppercase(), tail.str.to_uppercase().str.replace_all(r"[.\s]", "")]
    )
    return pl.when(etl.str.contains(_ICD)).then(icd).otherwise(etl)


def source_dictionary(source: str | None, path: Path | str | None) -> pl.DataFrame | None:
    """The source's code dictionary (``code``, ``description``), or None when it has none.

    ``source`` is the format (``mimic3``, ``mimic4``, ``meds``, ``events``) and ``path`` the
    folder or table it was read from; an event table has a dictionary only as a MEDS-style
    ``metadata/codes.parquet`` in its folder."""
    if source is None or path is None:
        return None
    path = Path(path)
    if source in ("mimic3", "mimic4"):
        if not path.is_dir():
            return None
        from medtorch.ehr.mimic import mimic_codes

        codes = mimic_codes(path, version=3 if source == "mimic3" else 4)
        return codes if codes.height else None
    from medtorch.ehr.meds import read_codes

    folder = path if path.is_dir() else None
    return read_codes(folder) if folder is not None else None


def code_descriptions(
    source: str | None, path: Path | str | None, codes: Iterable[str]
) -> dict[str, str]:
    """Code -> its readable name, for those of ``codes`` that the source's dictionary names
    (:func:`source_dictionary`); codes it does not name are left out.

    >>> code_descriptions("mimic3", "$MEDTORCH_DATA/mimic3_demo", ["DIAGNOSIS//ICD9CM//4019"])  # doctest: +SKIP
    {'DIAGNOSIS//ICD9CM//4019': 'Unspecified essential hypertension'}
    """
    wanted = pl.DataFrame({"code": list(dict.fromkeys(codes))}, schema={"code": pl.String})
    if not wanted.height:
        return {}
    table = source_dictionary(source, path)
    if table is None or "description" not in table.columns:
        return {}
    names = (
        table.lazy()
        .select(code_key(pl.col("code").cast(pl.String)).alias("_k"),
                pl.col("description").cast(pl.String).str.strip_chars())
        .filter(pl.col("description").is_not_null() & (pl.col("description") != ""))
        .unique("_k", keep="first")
    )  # fmt: skip
    hit = (
        wanted.lazy()
        .with_columns(code_key(pl.col("code")).alias("_k"))
        .join(names, on="_k", how="inner")
        .select("code", "description")
        .collect()
    )
    return dict(zip(hit["code"].to_list(), hit["description"].to_list()))


def describe(code: str, descriptions: dict[str, str] | None) -> str:
    """``CODE (its name)`` when ``descriptions`` names it, else the code as it is."""
    name = (descriptions or {}).get(code)
    return f"{code} ({name})" if name else code

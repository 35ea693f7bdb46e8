"""ICD code normalisation: dots, case, zero padding, version prefix, 3-character roll-up.

medtorch writes diagnosis and procedure codes as ``DIAGNOSIS//ICD9CM//4019``,
``DIAGNOSIS//ICD10CM//E119``, ``PROCEDURE//ICD9PCS//3961``, ``PROCEDURE//ICD10PCS//0DJD8ZZ``
(no dots, upper case). The MEDS MIMIC-IV ETL writes ``DIAGNOSIS//ICD//9//4019``; the
roll-up reads both forms.

Roll-up to the category (the 3-character level):

- ICD-9-CM diagnoses: the 3 digits before the decimal point (``4019`` -> ``401``); V codes
  ``V`` + 2 digits (``V707`` -> ``V70``); E codes (external causes) ``E`` + 3 digits
  (``E8889`` -> ``E888``), since ``E88`` is not an ICD-9 category.
- ICD-10-CM diagnoses: the first 3 characters (``M8008XA`` -> ``M80``).
- ICD-9-CM procedures: the 2 digits before the decimal point (``3961`` -> ``39``).
- ICD-10-PCS procedures: the first 3 characters (section, body system, operation).
"""

from __future__ import annotations

import polars as pl

from medtorch.errors import DataError

DIAGNOSIS_SYSTEMS = {9: "ICD9CM", 10: "ICD10CM"}
PROCEDURE_SYSTEMS = {9: "ICD9PCS", 10: "ICD10PCS"}


def normalize_icd(code: str, *, version: int = 9, kind: str = "diagnosis") -> str:
    """One ICD code without dots or spaces, upper case, zero-padded where a dot says how.

    A dotted ICD-9 code whose integer part lost its leading zeros is padded back (``9.0``
    -> ``0090``); an undotted code is taken as written (MIMIC stores them undotted and
    padded).

    >>> normalize_icd("401.9"), normalize_icd("v70.7"), normalize_icd("e888.9")
    ('4019', 'V707', 'E8889')
    >>> normalize_icd("9.0"), normalize_icd("E11.9", version=10)
    ('0090', 'E119')
    """
    text = code.strip().upper()
    if not text:
        raise DataError(
            f"expected an ICD code, got {code!r} in normalize_icd; drop empty codes first"
        )
    if "." in text and version == 9:
        head, _, tail = text.partition(".")
        if kind == "diagnosis":
            if head.startswith("E"):
                head = "E" + head[1:].zfill(3)
            elif head.startswith("V"):
                head = "V" + head[1:].zfill(2)
            else:
                head = head.zfill(3)
        else:
            head = head.zfill(2)
        text = head + tail
    return text.replace(".", "").replace(" ", "")


def icd_category(code: str, *, version: int = 9, kind: str = "diagnosis") -> str:
    """The 3-character category of a normalised code (see the module docstring).

    >>> icd_category("4019"), icd_category("V707"), icd_category("E8889")
    ('401', 'V70', 'E888')
    >>> icd_category("M8008XA", version=10), icd_category("3961", kind="procedure")
    ('M80', '39')
    """
    text = normalize_icd(code, version=version, kind=kind)
    if version == 9 and kind == "diagnosis":
        return text[:4] if text.startswith("E") else text[:3]
    if version == 9:
        return text[:2]
    return text[:3]


def icd_code_expr(column: str, system: str | pl.Expr, prefix: str = "DIAGNOSIS") -> pl.Expr:
    """Polars: ``<prefix>//<system>//<code>`` from a raw ICD column (dots and spaces
    stripped, upper case). ``system`` is a literal such as ``"ICD9CM"`` or an expression
    (MIMIC-IV chooses it per row from ``icd_version``)."""
    raw = pl.col(column).str.strip_chars().str.to_uppercase().str.replace_all(r"[.\s]", "")
    sys_expr = pl.lit(system) if isinstance(system, str) else system
    return pl.concat_str([pl.lit(prefix + "//"), sys_expr, pl.lit("//"), raw])


_DIAG_PATTERN = r"^DIAGNOSIS//(?:ICD(9|10)CM|ICD//(9|10))//(.+)$"


def diagnosis_category_expr(code: pl.Expr | None = None) -> pl.Expr:
    """Polars: the 3-character category of a diagnosis code as ``ICD9CM//401`` or
    ``ICD10CM//E11``; null for a code that is not an ICD diagnosis. Reads medtorch's
    (``DIAGNOSIS//ICD9CM//4019``) and the MEDS MIMIC-IV ETL's (``DIAGNOSIS//ICD//9//4019``)
    spellings alike."""
    code = pl.col("code") if code is None else code
    version = pl.coalesce(code.str.extract(_DIAG_PATTERN, 1), code.str.extract(_DIAG_PATTERN, 2))
    raw = code.str.extract(_DIAG_PATTERN, 3).str.to_uppercase().str.replace_all(r"[.\s]", "")
    cat = (
        pl.when(version == "9")
        .then(
            pl.when(raw.str.starts_with("E"))
            .then(raw.str.slice(0, 4))
            .otherwise(raw.str.slice(0, 3))
        )
        .otherwise(raw.str.slice(0, 3))
    )
    return pl.concat_str([pl.lit("ICD"), version, pl.lit("CM//"), cat])

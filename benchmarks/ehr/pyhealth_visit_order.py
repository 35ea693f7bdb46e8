"""Why PyHealth 1.1.6's MIMIC-III mortality cohort differs from medtorch's: its visits are
ordered by HADM_ID, not by admission time.

PyHealth 1.1.6 (``MIMIC3Dataset.parse_basic_info``) builds each patient's visits with
``groupby("HADM_ID")`` over string ids, which sorts them by id; its
``mortality_prediction_mimic3_fn`` then labels visit i with the HOSPITAL_EXPIRE_FLAG of
visit i + 1 in that order and keeps visit i only if it has diagnoses, procedures and
drugs. This script counts the samples and positives both ways on the MIMIC-III demo's
tables, with the same filter, without PyHealth:

    python benchmarks/ehr/pyhealth_visit_order.py [--data $MEDTORCH_DATA/mimic3_demo]

Ordered by HADM_ID it gives PyHealth's own counts (27 samples, 1 positive per 100 demo
patients, as the side-by-side benchmark found); ordered by ADMITTIME, 26 and 5 (medtorch's
29 and 7 before PyHealth's filter).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import polars as pl


def _table(root: Path, name: str) -> pl.DataFrame:
    for suffix in (".csv.gz", ".csv"):
        for stem in (name, name.lower()):
            path = root / f"{stem}{suffix}"
            if path.is_file():
                df = pl.read_csv(path, infer_schema=False)
                return df.rename({c: c.upper() for c in df.columns})
    raise SystemExit(f"expected {name}.csv[.gz] in {root}; point --data at a MIMIC-III folder")


def count(adm: pl.DataFrame, kept: set[str], order: str) -> dict[str, int]:
    """Samples and positives of the next-visit mortality task with visits in ``order``."""
    n = pos = 0
    for _, g in adm.group_by("SUBJECT_ID"):
        g = g.sort(order)
        hadm, flag = g["HADM_ID"].to_list(), g["HOSPITAL_EXPIRE_FLAG"].to_list()
        for i in range(len(hadm) - 1):
            if hadm[i] in kept:
                n += 1
                pos += flag[i + 1] == "1"
    return {"samples": n, "positive": pos}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("MEDTORCH_DATA", "data")) / "mimic3_demo"
    p.add_argument("--data", type=Path, default=default)
    a = p.parse_args()
    adm = _table(a.data, "ADMISSIONS")
    kept = set(adm["HADM_ID"].to_list())
    for name in ("DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS"):
        kept &= set(_table(a.data, name)["HADM_ID"].to_list())
    out = {order: count(adm, kept, order) for order in ("HADM_ID", "ADMITTIME")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

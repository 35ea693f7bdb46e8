"""Write MIMIC-III-shaped tables for N patients by copying the demo's 100 patients.

Copy k (0-based) of every row gets ``SUBJECT_ID``, ``HADM_ID``, ``ICUSTAY_ID`` and
``ROW_ID`` shifted by ``k * 1,000,000`` (the demo's ids are all below that), so the copies
are distinct patients with the demo's timelines. Every table that the benchmark reads is
copied (``--tables``; the default is what the mortality samples read: PATIENTS,
ADMISSIONS, DIAGNOSES_ICD, PROCEDURES_ICD, PRESCRIPTIONS). N must be a multiple of 100.

    python benchmarks/ehr/make_mimic3_copies.py --patients 100000 --out $TMPDIR/mimic3_100k

Write the output outside the repository (under $TMPDIR): 100,000 patients is about 2 GB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import polars as pl

DEFAULT_TABLES = ("PATIENTS", "ADMISSIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD", "PRESCRIPTIONS")
ID_COLUMNS = ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ROW_ID")
SHIFT = 1_000_000


def copy_table(src: Path, out: Path, copies: int, chunk: int = 50) -> int:
    """Write ``copies`` id-shifted copies of ``src`` to ``out`` (CSV); returns rows written."""
    table = pl.read_csv(src, infer_schema=False)
    ids = [c for c in table.columns if c in ID_COLUMNS]
    rows = 0
    with open(out, "wb") as fh:
        for start in range(0, copies, chunk):
            k = pl.DataFrame(
                {"_k": pl.arange(start, min(start + chunk, copies), eager=True, dtype=pl.Int64)}
            )
            block = k.join(table, how="cross").with_columns(
                [
                    pl.when(pl.col(c).is_null() | (pl.col(c) == ""))
                    .then(pl.col(c))
                    .otherwise((pl.col(c).cast(pl.Int64) + pl.col("_k") * SHIFT).cast(pl.String))
                    .alias(c)
                    for c in ids
                ]
            )
            block = block.sort("_k", maintain_order=True).drop("_k")
            block.write_csv(fh, include_header=start == 0)
            rows += block.height
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, required=True, help="a multiple of 100")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--source", type=Path, default=None, help="default: $MEDTORCH_DATA/mimic3_demo")
    ap.add_argument("--tables", nargs="+", default=list(DEFAULT_TABLES))
    args = ap.parse_args(argv)
    source = args.source or Path(os.environ.get("MEDTORCH_DATA", "")) / "mimic3_demo"
    if args.patients <= 0 or args.patients % 100:
        print(
            f"error: expected a positive multiple of 100, got {args.patients} in --patients",
            file=sys.stderr,
        )
        return 2
    if not (source / "PATIENTS.csv.gz").is_file():
        print(
            f"error: expected the MIMIC-III demo, got no PATIENTS.csv.gz in {source}; set MEDTORCH_DATA",
            file=sys.stderr,
        )
        return 2
    copies = args.patients // 100
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name in args.tables:
        rows = copy_table(source / f"{name}.csv.gz", args.out / f"{name}.csv", copies)
        size = (args.out / f"{name}.csv").stat().st_size
        print(f"{name}: {rows:,} rows, {size / 1e6:,.0f} MB")
    print(
        f"{args.patients:,} patients ({copies} copies) in {time.perf_counter() - t0:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

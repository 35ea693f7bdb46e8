"""Admissions, deaths and follow-up read from the MEDS event table, with the cohort flow.

Every task starts from :func:`admissions`: one row per hospital admission, whatever the
source. Admission and discharge events are paired by ``hadm_id`` where the events have
one, else each admission takes the first discharge at or after it and before the
subject's next admission (the MEDS MIMIC-IV ETL writes no ``hadm_id``).

Rules (written into every cohort flow):

- An admission is **unusable** (kept in a patient's history, never an index or a target
  of a label) when it has no discharge time, when its discharge is before its admission,
  or when a reader noted a death flag with no death time for it.
- A patient **died during an admission** when the patient's ``MEDS_DEATH`` time (the
  earliest, if several) lies between the admission and its discharge; a death known only
  to the day (a time of exactly midnight) counts when its day is the discharge day.
- The **end of follow-up** of a subject is the time of the subject's last event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from medtorch.ehr import schema as S
from medtorch.errors import DataError

UNUSABLE_NO_DISCHARGE = "admission without a discharge time"
UNUSABLE_DISCHARGE_BEFORE = "discharge before admission"
UNUSABLE_DEATH_NO_TIME = "death flag set with no death time (reader note)"


@dataclass
class Flow:
    """The cohort flow of one task: what went in, what was excluded and why, the labels."""

    task: str
    params: dict[str, Any]
    subjects_in: int = 0
    admissions_in: int = 0
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    def exclude(self, reason: str, count: int, unit: str = "samples") -> None:
        """Record ``count`` excluded ``unit`` (recorded even when 0, so the rule shows)."""
        self.exclusions.append({"reason": reason, "count": int(count), "unit": unit})

    def to_dict(
        self, labels: pl.DataFrame | None = None, label_counts: dict[str, int] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "params": self.params,
            "subjects_in": self.subjects_in,
            "admissions_in": self.admissions_in,
            "exclusions": self.exclusions,
            "rules": self.rules,
            "notes": self.notes,
        }
        if labels is not None:
            out["samples"] = labels.height
            out["subjects"] = labels["subject_id"].n_unique() if labels.height else 0
        if label_counts is not None:
            out["label_balance"] = label_counts
        return out


RULES = [
    "an admission with no discharge time, a discharge before its admission, or a death flag "
    "with no death time is unusable: kept in the patient's history, never an index or a target",
    "died during an admission = the subject's earliest MEDS_DEATH lies between admission and "
    "discharge (a death known only to the day counts on the discharge day)",
    "end of follow-up = the subject's last event time",
]


def _pair_by_time(adm: pl.DataFrame, dis: pl.DataFrame) -> pl.DataFrame:
    """Each admission's first discharge at or after it and before the next admission."""
    adm = adm.sort(["subject_id", "admit"]).with_columns(
        pl.col("admit").shift(-1).over("subject_id").alias("_next_admit")
    )
    dis = dis.sort(["subject_id", "discharge"])
    joined = adm.sort("admit").join_asof(
        dis.sort("discharge"),
        left_on="admit",
        right_on="discharge",
        by="subject_id",
        strategy="forward",
        check_sortedness=False,
    )
    late = pl.col("_next_admit").is_not_null() & (pl.col("discharge") > pl.col("_next_admit"))
    return joined.with_columns(
        pl.when(late).then(None).otherwise(pl.col("discharge")).alias("discharge")
    ).drop("_next_admit")


def admissions(
    events: pl.DataFrame | pl.LazyFrame,
) -> tuple[pl.DataFrame, dict[str, int], pl.Series]:
    """One row per admission: ``subject_id, visit_id, admit, discharge, visit_idx`` (order
    within the subject, from 0), ``n_visits``, ``unusable`` (a reason or null),
    ``died_in`` (bool), ``death_time``, ``end_of_followup``, and the next admission's
    ``next_visit_id, next_admit, next_unusable, next_died_in``. Also counts of duplicate
    admission/discharge rows removed, and every subject id of the events."""
    lf = events.lazy()
    has_hadm = "hadm_id" in lf.collect_schema().names()
    hadm = pl.col("hadm_id") if has_hadm else pl.lit(None, pl.Int64)
    code = pl.col("code")
    # one cheap pass picks the few timeline rows; the rest is numeric
    marks_q = lf.filter(
        code.str.starts_with("HOSPITAL_")
        | code.str.starts_with("MEDTORCH_")
        | code.str.starts_with("MEDS_DEATH")
    ).select("subject_id", "time", "code", hadm.alias("hadm_id"))
    last_q = lf.group_by("subject_id").agg(pl.col("time").max().alias("end_of_followup"))
    marks, last = pl.collect_all([marks_q, last_q])
    struct = marks.filter(
        S.is_code(S.ADMISSION) | S.is_code(S.DISCHARGE) | (code == S.DEATH_FLAG_WITHOUT_TIME)
    )
    death = (
        marks.filter(S.is_code(S.DEATH) & pl.col("time").is_not_null())
        .group_by("subject_id")
        .agg(pl.col("time").min().alias("death_time"))
    )
    subj = last.join(death, on="subject_id", how="left")
    counts: dict[str, int] = {}
    dedup = struct.unique(maintain_order=True)
    counts["duplicate admission/discharge rows removed"] = struct.height - dedup.height
    struct = dedup
    is_adm = S.is_code(S.ADMISSION)
    adm = struct.filter(is_adm).select("subject_id", pl.col("time").alias("admit"), "hadm_id")
    dis = struct.filter(S.is_code(S.DISCHARGE)).select(
        "subject_id", pl.col("time").alias("discharge"), "hadm_id"
    )
    note = struct.filter(pl.col("code") == S.DEATH_FLAG_WITHOUT_TIME).select("hadm_id").unique()
    nulltime = adm.filter(pl.col("admit").is_null())
    if nulltime.height:
        raise DataError(
            f"expected a time on every {S.ADMISSION} event, got none for subject "
            f"{nulltime['subject_id'][0]} ({nulltime.height} such events) in the event table; "
            "an admission needs its time"
        )
    dup = adm.filter(pl.col("hadm_id").is_not_null() & pl.col("hadm_id").is_duplicated())
    if dup.height:
        raise DataError(
            f"expected one {S.ADMISSION} per hadm_id, got {dup.height} for hadm_id "
            f"{dup['hadm_id'][0]} (subject {dup['subject_id'][0]}) in the event table; "
            "remove the duplicate admissions"
        )
    dupd = dis.filter(pl.col("hadm_id").is_not_null() & pl.col("hadm_id").is_duplicated())
    if dupd.height:
        raise DataError(
            f"expected one {S.DISCHARGE} per hadm_id, got several for hadm_id "
            f"{dupd['hadm_id'][0]} (subject {dupd['subject_id'][0]}) in the event table; "
            "remove the duplicate discharges"
        )
    with_id = adm.filter(pl.col("hadm_id").is_not_null()).join(
        dis.filter(pl.col("hadm_id").is_not_null()).select("hadm_id", "discharge"),
        on="hadm_id",
        how="left",
    )
    without = adm.filter(pl.col("hadm_id").is_null())
    if without.height:
        without = _pair_by_time(without, dis.filter(pl.col("hadm_id").is_null()).drop("hadm_id"))
    else:
        without = with_id.clear()
    adm = pl.concat([with_id, without.select(with_id.columns)], how="vertical").sort(
        ["subject_id", "admit", "hadm_id"], nulls_last=True
    )
    adm = adm.with_columns(
        pl.coalesce(pl.col("hadm_id"), -(pl.int_range(pl.len(), dtype=pl.Int64) + 1)).alias(
            "visit_id"
        ),
        pl.int_range(pl.len(), dtype=pl.Int64).over("subject_id").alias("visit_idx"),
        pl.len().over("subject_id").cast(pl.Int64).alias("n_visits"),
    )
    adm = adm.join(subj, on="subject_id", how="left", maintain_order="left")
    midnight = pl.col("death_time") == pl.col("death_time").dt.truncate("1d")
    died = pl.col("death_time").is_not_null() & (
        (
            (pl.col("death_time") >= pl.col("admit").dt.truncate("1d"))
            & (pl.col("death_time") <= pl.col("discharge"))
        )
        | (midnight & (pl.col("death_time").dt.date() == pl.col("discharge").dt.date()))
    )
    unusable = (
        pl.when(pl.col("hadm_id").is_in(note["hadm_id"].implode()))
        .then(pl.lit(UNUSABLE_DEATH_NO_TIME))
        .when(pl.col("discharge").is_null())
        .then(pl.lit(UNUSABLE_NO_DISCHARGE))
        .when(pl.col("discharge") < pl.col("admit"))
        .then(pl.lit(UNUSABLE_DISCHARGE_BEFORE))
    )
    adm = adm.with_columns(died.fill_null(False).alias("died_in"), unusable.alias("unusable"))
    nxt = {
        "visit_id": "next_visit_id",
        "admit": "next_admit",
        "unusable": "next_unusable",
        "died_in": "next_died_in",
    }
    adm = adm.sort("subject_id", "visit_idx").with_columns(
        [pl.col(k).shift(-1).over("subject_id").alias(v) for k, v in nxt.items()]
    )
    return adm, counts, subj["subject_id"].sort()


def assign_visits(
    frame: pl.DataFrame | pl.LazyFrame, adm: pl.DataFrame
) -> pl.DataFrame | pl.LazyFrame:
    """``frame`` (``subject_id``, ``time``, ``hadm_id``) with the ``visit_id`` of the
    admission each row belongs to: its ``hadm_id`` where that is a known admission, else
    the admission whose [admit, discharge] holds its time; null when none does."""
    lazy = isinstance(frame, pl.LazyFrame)
    lf = frame.lazy()
    if "hadm_id" not in lf.collect_schema().names():
        lf = lf.with_columns(pl.lit(None, pl.Int64).alias("hadm_id"))
    keys = (
        adm.filter(pl.col("hadm_id").is_not_null())
        .select("hadm_id", pl.col("visit_id").alias("_vid"))
        .lazy()
    )
    lf = lf.join(keys, on="hadm_id", how="left")
    spans = (
        adm.select(
            "subject_id",
            "admit",
            pl.coalesce("discharge", "admit").alias("_end"),
            pl.col("visit_id").alias("_vt"),
        )
        .sort("admit")
        .lazy()
    )
    timed = (
        lf.filter(pl.col("_vid").is_null() & pl.col("time").is_not_null())
        .sort("time")
        .join_asof(
            spans,
            left_on="time",
            right_on="admit",
            by="subject_id",
            strategy="backward",
            check_sortedness=False,
        )
    )
    timed = timed.with_columns(
        pl.when(pl.col("time") <= pl.col("_end")).then(pl.col("_vt")).alias("_vid")
    ).drop("admit", "_end", "_vt")
    out = pl.concat([lf.filter(pl.col("_vid").is_not_null()), timed], how="vertical").rename(
        {"_vid": "visit_id"}
    )
    return out if lazy else out.collect()


def subjects(events: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """Every subject id in the event table."""
    return events.lazy().select(pl.col("subject_id").unique().sort()).collect()["subject_id"]


def start_flow(
    task: str, params: dict[str, Any], events: pl.DataFrame | pl.LazyFrame
) -> tuple[Flow, pl.DataFrame]:
    """The admissions table and a flow with the inputs, the reader's notes and the
    admissions that no task can use (counted once, by reason)."""
    adm, counts, subj = admissions(events)
    flow = Flow(task=task, params=params, subjects_in=len(subj), admissions_in=adm.height)
    no_adm = len(subj) - adm["subject_id"].n_unique()
    flow.exclude("subjects without any admission", no_adm, "subjects")
    for reason, n in counts.items():
        flow.exclude(reason, n, "rows")
    for reason in (UNUSABLE_NO_DISCHARGE, UNUSABLE_DISCHARGE_BEFORE, UNUSABLE_DEATH_NO_TIME):
        flow.exclude(
            f"unusable admission: {reason}", int((adm["unusable"] == reason).sum()), "admissions"
        )
    flow.rules.extend(RULES)
    return flow, adm

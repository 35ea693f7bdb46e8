"""Prediction tasks declared on the MEDS event table: one implementation for every source.

Each task turns the events into a **label table** in the MEDS label schema
(``subject_id``, ``prediction_time``, ``boolean_value``; ``label_codes`` for the
multi-label task; plus ``hadm_id`` of the index admission and the input window) and a
**cohort flow** (subjects and admissions in, every exclusion with its count and reason,
the rules, the label balance). Inputs are later taken only from events at or before
``prediction_time`` (:mod:`medtorch.ehr.samples`).

=========================  =======  ==============================================================
task                       inputs   label
=========================  =======  ==============================================================
mortality_next_visit       visits   death during the next admission; predicted at the discharge
                                    of each admission that has a next one
readmission_30d            visits   next admission within ``window_days`` (30) of discharge,
                                    measured discharge -> next admission
in_hospital_mortality_48h  events   death before discharge, for stays >= ``hours`` (48), from the
                                    events up to hour 48 (plus earlier admissions)
long_stay_7d               events   length of stay > ``los_days`` (7), from the first 48 h
next_visit_diagnosis       visits   the 3-character ICD diagnosis categories of the next admission
                                    (multi-label; the label names are fitted on training subjects)
=========================  =======  ==============================================================

Readmission rules (MEDS-DEV withdrew a readmission task for getting these wrong): an index
admission that ended in death is excluded; a next admission starting within the window is
positive (``0 <= gap <= window_days``); otherwise a death within the window is excluded
(it is neither a readmission nor a negative), and so is an index whose follow-up (end of
follow-up = the subject's last event time) is shorter than the window; the rest are
negative. An overlapping next admission (starting before the discharge) is excluded.

A label table made elsewhere (for example with ACES) is accepted by :func:`user_labels`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from medtorch.ehr.cohort import Flow, assign_visits, start_flow
from medtorch.ehr.icd import diagnosis_category_expr
from medtorch.errors import ConfigError, DataError

LabelFn = Callable[[pl.DataFrame, pl.LazyFrame, dict[str, Any], Flow], pl.DataFrame]


@dataclass(frozen=True)
class TaskSpec:
    """A task: what its samples look like and how its labels are made."""

    name: str
    kind: str  # "visits" or "events"
    label_type: str  # "binary" or "multilabel"
    class_names: tuple[str, ...]
    defaults: dict[str, Any]
    label_fn: LabelFn
    description: str


TASKS: dict[str, TaskSpec] = {}


def _register(spec: TaskSpec) -> TaskSpec:
    TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The declaration of task ``name``; an unknown name lists the known ones."""
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"expected an EHR task among {sorted(TASKS)}, got {name!r} in task.name; {hint}"
        )
    return TASKS[name]


def task_params(spec: TaskSpec, params: dict[str, Any] | None) -> dict[str, Any]:
    """The task's defaults updated by ``params``; an unknown key is a ConfigError."""
    out = dict(spec.defaults)
    for key, value in (params or {}).items():
        if key not in out:
            raise ConfigError(
                f"expected a parameter of {spec.name} among {sorted(out)}, got {key!r} in task.params; "
                "remove it or fix the spelling"
            )
        out[key] = value
    return out


# ---------------------------------------------------------------- visit-sequence tasks


def _index_with_next(adm: pl.DataFrame, flow: Flow) -> pl.DataFrame:
    """Admissions that have a next admission, both usable, not overlapping."""
    has_next = adm.filter(pl.col("next_visit_id").is_not_null())
    flow.notes.append(
        f"{adm.height - has_next.height} admissions are a subject's last: no next admission, no sample"
    )
    steps = [
        ("index admission unusable", pl.col("unusable").is_not_null()),
        (
            "next admission unusable (its label cannot be read)",
            pl.col("next_unusable").is_not_null(),
        ),
        ("died during the index admission yet has a next admission", pl.col("died_in")),
        (
            "next admission starts before the index discharge",
            pl.col("next_admit") < pl.col("discharge"),
        ),
    ]
    for reason, bad in steps:
        n = has_next.filter(bad).height
        flow.exclude(reason, n)
        has_next = has_next.filter(~bad)
    return has_next


def _visit_labels(rows: pl.DataFrame, value: pl.Expr | None = None) -> pl.DataFrame:
    cols = [
        pl.col("subject_id"),
        pl.col("discharge").alias("prediction_time"),
        pl.col("hadm_id"),
        pl.col("visit_id"),
    ]
    if value is not None:
        cols.append(value.alias("boolean_value"))
    return rows.select(cols)


def _mortality_next_visit(
    adm: pl.DataFrame, events: pl.LazyFrame, p: dict[str, Any], flow: Flow
) -> pl.DataFrame:
    rows = _index_with_next(adm, flow)
    flow.rules.append(
        "sample = each admission with a next admission; prediction time = its discharge; "
        "label = death during the next admission"
    )
    return _visit_labels(rows, pl.col("next_died_in"))


def _readmission(
    adm: pl.DataFrame, events: pl.LazyFrame, p: dict[str, Any], flow: Flow
) -> pl.DataFrame:
    window = float(p["window_days"])
    if window <= 0:
        raise ConfigError(
            f"expected window_days > 0, got {window} in task.params.window_days; set e.g. 30"
        )
    rows = adm
    day = pl.duration(days=1)
    gap = (pl.col("next_admit") - pl.col("discharge")) / day
    steps = [
        ("index admission unusable", pl.col("unusable").is_not_null()),
        ("died during the index admission", pl.col("died_in")),
        ("next admission starts before the index discharge (overlap)", gap.fill_null(0) < 0),
    ]
    for reason, bad in steps:
        flow.exclude(reason, rows.filter(bad).height)
        rows = rows.filter(~bad)
    readmit = gap.is_not_null() & (gap <= window)
    died = pl.col("death_time").is_not_null() & (
        (pl.col("death_time") - pl.col("discharge")) / day <= window
    )
    censored = (pl.col("end_of_followup") - pl.col("discharge")) / day < window
    n_died = rows.filter(~readmit & died).height
    flow.exclude(f"died within {window:g} days of discharge without readmission", n_died)
    rows = rows.filter(readmit | ~died)
    n_cens = rows.filter(~readmit & censored).height
    flow.exclude(f"less than {window:g} days of follow-up and no readmission (censored)", n_cens)
    rows = rows.filter(readmit | ~censored)
    flow.rules.append(
        f"sample = each usable admission not ending in death; prediction time = its discharge; "
        f"positive = next admission starts within {window:g} days of discharge (0 <= gap <= window); "
        "death within the window without readmission: excluded; follow-up (to the subject's last event) "
        "shorter than the window without readmission: excluded"
    )
    return _visit_labels(rows, readmit)


def _next_visit_diagnosis(
    adm: pl.DataFrame, events: pl.LazyFrame, p: dict[str, Any], flow: Flow
) -> pl.DataFrame:
    rows = _index_with_next(adm, flow)
    names = events.collect_schema().names()
    dx = (
        events.filter(pl.col("time").is_not_null())
        .select(
            "subject_id",
            "time",
            (pl.col("hadm_id") if "hadm_id" in names else pl.lit(None, pl.Int64)).alias("hadm_id"),
            diagnosis_category_expr().alias("category"),
        )
        .filter(pl.col("category").is_not_null())
        .collect()
    )
    dxv = assign_visits(dx, adm)
    assert isinstance(dxv, pl.DataFrame)
    cats = dxv.group_by("visit_id").agg(pl.col("category").unique().sort().alias("label_codes"))
    rows = rows.join(
        cats.rename({"visit_id": "next_visit_id"}),
        on="next_visit_id",
        how="left",
        maintain_order="left",
    )
    empty = pl.col("label_codes").is_null() | (pl.col("label_codes").list.len() == 0)
    flow.exclude("next admission has no diagnosis code", rows.filter(empty).height)
    rows = rows.filter(~empty)
    flow.rules.append(
        "sample = each admission with a next admission; prediction time = its discharge; "
        "labels = 3-character ICD categories of the next admission's diagnoses"
    )
    return _visit_labels(rows).with_columns(rows["label_codes"])


# ---------------------------------------------------------------- first-48-hours tasks


def _first_hours(adm: pl.DataFrame, p: dict[str, Any], flow: Flow) -> pl.DataFrame:
    hours = float(p["hours"])
    cut = pl.col("admit") + pl.duration(microseconds=int(hours * 3.6e9))
    rows = adm.with_columns(cut.alias("prediction_time"))
    los_h = (pl.col("discharge") - pl.col("admit")) / pl.duration(hours=1)
    steps = [
        ("admission unusable", pl.col("unusable").is_not_null()),
        (f"stay shorter than {hours:g} h", los_h < hours),
        (
            f"died before hour {hours:g}",
            pl.col("death_time").is_not_null()
            & (pl.col("death_time") < pl.col("prediction_time"))
            & pl.col("died_in"),
        ),
    ]
    for reason, bad in steps:
        flow.exclude(reason, rows.filter(bad).height)
        rows = rows.filter(~bad)
    return rows


def _event_labels(rows: pl.DataFrame, value: pl.Expr) -> pl.DataFrame:
    return rows.select(
        "subject_id",
        "prediction_time",
        "hadm_id",
        "visit_id",
        value.alias("boolean_value"),
        pl.col("admit").alias("window_start"),
        pl.col("discharge").alias("index_discharge"),
    )


def _ihm(adm: pl.DataFrame, events: pl.LazyFrame, p: dict[str, Any], flow: Flow) -> pl.DataFrame:
    rows = _first_hours(adm, p, flow)
    flow.rules.append(
        f"sample = each usable admission lasting >= {p['hours']:g} h; prediction time = admission + "
        f"{p['hours']:g} h; label = death before discharge; inputs = events up to the prediction time "
        "(never the admission's own discharge-time codes)"
    )
    return _event_labels(rows, pl.col("died_in"))


def _long_stay(
    adm: pl.DataFrame, events: pl.LazyFrame, p: dict[str, Any], flow: Flow
) -> pl.DataFrame:
    rows = _first_hours(adm, p, flow)
    los_d = (pl.col("discharge") - pl.col("admit")) / pl.duration(days=1)
    flow.rules.append(
        f"sample = each usable admission lasting >= {p['hours']:g} h; prediction time = admission + "
        f"{p['hours']:g} h; label = length of stay > {p['los_days']:g} days"
    )
    return _event_labels(rows, los_d > float(p["los_days"]))


_VISIT_DEFAULTS = {"max_visits": 10, "max_codes_per_visit": 128, "code_prefixes": None}
_EVENT_DEFAULTS = {
    "hours": 48.0,
    "max_events": 512,
    "include_history": True,
    "include_static": True,
    "code_prefixes": None,
}

_register(
    TaskSpec(
        "mortality_next_visit",
        "visits",
        "binary",
        ("survived", "died"),
        dict(_VISIT_DEFAULTS),
        _mortality_next_visit,
        "death during the next admission, from the visits so far",
    )
)
_register(
    TaskSpec(
        "readmission_30d",
        "visits",
        "binary",
        ("no readmission", "readmitted"),
        {**_VISIT_DEFAULTS, "window_days": 30.0},
        _readmission,
        "readmission within window_days of discharge",
    )
)
_register(
    TaskSpec(
        "next_visit_diagnosis",
        "visits",
        "multilabel",
        (),
        {**_VISIT_DEFAULTS, "label_min_count": 1},
        _next_visit_diagnosis,
        "3-character ICD categories of the next admission",
    )
)
_register(
    TaskSpec(
        "in_hospital_mortality_48h",
        "events",
        "binary",
        ("survived", "died"),
        dict(_EVENT_DEFAULTS),
        _ihm,
        "death before discharge from the first 48 h",
    )
)
_register(
    TaskSpec(
        "long_stay_7d",
        "events",
        "binary",
        ("<= 7 days", "> 7 days"),
        {**_EVENT_DEFAULTS, "los_days": 7.0},
        _long_stay,
        "length of stay over 7 days from the first 48 h",
    )
)


def label_counts(spec: TaskSpec, labels: pl.DataFrame) -> dict[str, int]:
    """Samples per class (binary) or per label name (multi-label)."""
    if spec.label_type == "multilabel":
        if not labels.height:
            return {}
        counts = (
            labels.select(pl.col("label_codes").explode())
            .to_series()
            .value_counts()
            .sort("count", descending=True)
        )
        return dict(zip(counts[counts.columns[0]].to_list(), counts["count"].to_list()))
    pos = int(labels["boolean_value"].sum()) if labels.height else 0
    return {spec.class_names[0]: labels.height - pos, spec.class_names[1]: pos}


def build_labels(
    events: pl.DataFrame | pl.LazyFrame, task: str, params: dict[str, Any] | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The label table (MEDS label schema + ``hadm_id``) and the cohort flow of ``task``.

    >>> labels, flow = build_labels(events, "readmission_30d", {"window_days": 15})  # doctest: +SKIP
    """
    spec = get_task(task)
    p = task_params(spec, params)
    flow, adm = start_flow(task, p, events)
    labels = spec.label_fn(adm, events.lazy(), p, flow)
    return labels, flow.to_dict(labels, label_counts(spec, labels))


# ---------------------------------------------------------------- a label table given by the user


def user_labels(
    labels: pl.DataFrame, events: pl.DataFrame | pl.LazyFrame, where: str = "labels table"
) -> tuple[pl.DataFrame, dict[str, Any], str, tuple[str, ...]]:
    """A MEDS label table made elsewhere (``subject_id``, ``prediction_time`` and one of
    ``boolean_value`` / ``integer_value``), checked and joined to the events' subjects.

    Returns ``(labels, flow, label_type, class_names)``. Labels of subjects absent from the
    events, or with a null prediction time or value, are excluded and counted."""
    for col in ("subject_id", "prediction_time"):
        if col not in labels.columns:
            raise DataError(
                f"expected a column {col!r}, got {labels.columns} in the {where}; MEDS labels have "
                "subject_id, prediction_time and boolean_value (or integer_value)"
            )
    value_col = next((c for c in ("boolean_value", "integer_value") if c in labels.columns), None)
    if value_col is None:
        raise DataError(
            f"expected a column 'boolean_value' or 'integer_value', got {labels.columns} in the {where}; "
            "add the label column"
        )
    dtype = labels.schema[value_col]
    if value_col == "boolean_value" and dtype != pl.Boolean:
        raise DataError(
            f"expected boolean_value of type Boolean, got {dtype} in the {where}; "
            "store true/false, not text or numbers (a text flag is never read as 0)"
        )
    if value_col == "integer_value" and not dtype.is_integer():
        raise DataError(
            f"expected integer_value of an integer type, got {dtype} in the {where}; convert it"
        )
    if not isinstance(labels.schema["prediction_time"], pl.Datetime):
        raise DataError(
            f"expected prediction_time as a timestamp, got {labels.schema['prediction_time']} in the {where}; convert it"
        )
    frame = labels.select(
        pl.col("subject_id").cast(pl.Int64),
        pl.col("prediction_time").cast(pl.Datetime("us")),
        pl.col(value_col),
    ).with_columns(pl.lit(None, pl.Int64).alias("hadm_id"))
    flow = Flow(
        task="labels",
        params={"where": where},
        subjects_in=frame["subject_id"].n_unique(),
        admissions_in=0,
    )
    known = events.lazy().select(pl.col("subject_id").unique()).collect()["subject_id"]
    bad_null = pl.col("prediction_time").is_null() | pl.col(value_col).is_null()
    flow.exclude("label with no prediction time or no value", frame.filter(bad_null).height)
    frame = frame.filter(~bad_null)
    unknown = ~pl.col("subject_id").is_in(known.implode())
    flow.exclude("subject not in the event table", frame.filter(unknown).height)
    frame = frame.filter(~unknown)
    dups = frame.height - frame.unique(["subject_id", "prediction_time"]).height
    if dups:
        raise DataError(
            f"expected one label per (subject_id, prediction_time), got {dups} repeats in the {where}; "
            "remove the duplicates"
        )
    flow.rules.append("inputs = events at or before each label's prediction_time")
    if value_col == "boolean_value":
        label_type = "binary"
        names: tuple[str, ...] = ("false", "true")
        counts = {"false": int((~frame[value_col]).sum()), "true": int(frame[value_col].sum())}
    else:
        values = sorted(frame[value_col].unique().to_list())
        if values and (values[0] < 0):
            raise DataError(
                f"expected integer_value >= 0 (class indices), got {values[0]} in the {where}; recode it"
            )
        label_type = "multiclass"
        names = tuple(str(v) for v in range(int(max(values, default=0)) + 1))
        counts = {str(k): int(v) for k, v in frame[value_col].value_counts().iter_rows()}
    return frame, flow.to_dict(frame, counts), label_type, names

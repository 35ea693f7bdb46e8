"""Samples (ragged, per patient) and the arrays the EHR models take (docs: EHR_CONTRACT).

Flow (:class:`~medtorch.ehr.vocab.CodeVocab` is in :mod:`medtorch.ehr.vocab`)::

    samples = build_samples(events, "mortality_next_visit", params)   # labels + ragged inputs
    train = samples.by_subjects(train_ids)                            # after the split
    vocab = CodeVocab.fit(train, min_count=1)                         # training subjects only
    arrays = vocab.transform(samples)                                 # x, t (, v), y, groups...

Visit samples hold, per sample, the visits before the prediction time (oldest first), each
the distinct codes of that visit in order of first appearance; event samples hold the
events of the input window in time order with their hours from the admission and values.
Inputs are only ever events at or before ``prediction_time``; event samples also never
see the index admission's own discharge-time codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medtorch.ehr import schema as S
from medtorch.ehr.cohort import assign_visits, start_flow
from medtorch.ehr.tasks import get_task, label_counts, task_params, user_labels
from medtorch.errors import ConfigError, DataError

_HOUR_US = 3.6e9
_DAY_US = 86_400e6


@dataclass
class Samples:
    """One row per sample in ``frame``: ``subject_id``, ``prediction_time``, ``hadm_id``,
    ``sample_id``, the label (``boolean_value``, ``integer_value`` or ``label_codes``) and
    the inputs: ``visit_codes`` (list of visits, each a list of codes), ``visit_starts``,
    ``visit_days`` (kind "visits"), or ``event_codes``, ``event_hours``, ``event_values``,
    ``window_start`` (kind "events"). ``dims`` is the padded shape the arrays take
    (``n_visits``/``n_codes`` or ``n_events``), fixed on the whole set so every subset
    gives arrays of one shape."""

    task: str
    kind: str
    label_type: str
    class_names: list[str]
    frame: pl.DataFrame
    cohort: dict[str, Any]
    dims: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.frame.height

    @property
    def subject_ids(self) -> np.ndarray:
        return self.frame["subject_id"].to_numpy()

    @property
    def groups(self) -> np.ndarray:
        return self.frame["subject_id"].cast(pl.String).to_numpy()

    @property
    def sample_ids(self) -> np.ndarray:
        return self.frame["sample_id"].to_numpy()

    def labels(self) -> pl.DataFrame:
        """The label table in the MEDS label schema (plus ``hadm_id``)."""
        value = [
            c for c in ("boolean_value", "integer_value", "label_codes") if c in self.frame.columns
        ]
        return self.frame.select("subject_id", "prediction_time", *value, "hadm_id")

    def write_labels(self, path: Path | str) -> Path:
        """Write :meth:`labels` as ``labels.parquet`` (MEDS label schema) at ``path``."""
        path = Path(path)
        self.labels().write_parquet(path)
        return path

    def subset(self, index: Sequence[int] | np.ndarray) -> Samples:
        """Rows ``index`` (the cohort and dims are kept)."""
        idx = pl.Series("i", np.asarray(index, dtype=np.int64))
        return replace(self, frame=self.frame[idx])

    def by_subjects(self, subject_ids: Iterable[int]) -> Samples:
        """The samples of these subjects (e.g. the training subjects of a split)."""
        ids = pl.Series("s", list(subject_ids), dtype=pl.Int64)
        return replace(self, frame=self.frame.filter(pl.col("subject_id").is_in(ids.implode())))

    def meds_split(self, splits: pl.DataFrame) -> dict[str, Samples]:
        """``{"train", "tuning", "held_out"}`` from a MEDS ``subject_splits`` table; a
        subject with samples but no split is an error (it would vanish silently)."""
        missing = self.frame.join(splits, on="subject_id", how="anti")
        if missing.height:
            raise DataError(
                f"expected every subject in subject_splits, got subject {missing['subject_id'][0]} "
                f"({missing['subject_id'].n_unique()} subjects) missing in metadata/subject_splits.parquet; "
                "add them or drop the file to split by medtorch's own rule"
            )
        return {
            name: self.by_subjects(splits.filter(pl.col("split") == name)["subject_id"])
            for name in ("train", "tuning", "held_out")
        }


def _inputs_filter(events: pl.LazyFrame, prefixes: Sequence[str] | None) -> pl.LazyFrame:
    lf = events.filter(~S.structural_codes())
    if prefixes:
        if isinstance(prefixes, str):
            raise ConfigError(
                f"expected a list of code prefixes, got {prefixes!r} in task.params.code_prefixes; "
                "write e.g. [DIAGNOSIS, PROCEDURE, MEDICATION]"
            )
        cond = pl.lit(False)
        for pre in prefixes:
            cond = cond | (pl.col("code") == pre) | pl.col("code").str.starts_with(pre + "//")
        lf = lf.filter(cond)
    return lf


def _visit_inputs(
    events: pl.LazyFrame,
    adm: pl.DataFrame,
    labels: pl.DataFrame,
    p: dict[str, Any],
    trunc: dict[str, int],
) -> pl.DataFrame:
    names = events.collect_schema().names()
    # only the subjects that have a sample (most subjects have a single admission, no sample)
    keep = labels.select(pl.col("subject_id").unique())
    events = events.join(keep.lazy(), on="subject_id", how="semi")
    ev = _inputs_filter(events.filter(pl.col("time").is_not_null()), p.get("code_prefixes")).select(
        "subject_id",
        "time",
        "code",
        (pl.col("hadm_id") if "hadm_id" in names else pl.lit(None, pl.Int64)).alias("hadm_id"),
    )
    evv = assign_visits(ev, adm.join(keep, on="subject_id", how="semi"))
    assert isinstance(evv, pl.LazyFrame)
    # each visit's distinct codes in order of first appearance, once per visit
    visits = (
        evv.filter(pl.col("visit_id").is_not_null())
        .group_by("subject_id", "visit_id", "code")
        .agg(pl.col("time").min().alias("t"))
        .sort("t", "code")
        .group_by("subject_id", "visit_id", maintain_order=True)
        .agg(
            pl.col("code").alias("codes"), pl.col("t").alias("ts"), pl.col("t").max().alias("_tmax")
        )
        .join(adm.lazy().select("visit_id", "admit"), on="visit_id")
    )
    lab = labels.lazy().select("_i", "subject_id", "prediction_time")
    pairs = (
        lab.join(visits, on="subject_id")
        .filter(pl.col("ts").list.first() <= pl.col("prediction_time"))
        .collect(engine="streaming")
    )
    # a visit that straddles the prediction time keeps only its codes up to that time
    whole = pairs.filter(pl.col("_tmax") <= pl.col("prediction_time"))
    part = pairs.filter(pl.col("_tmax") > pl.col("prediction_time"))
    if part.height:
        part = (
            part.with_row_index("_r")
            .explode("codes", "ts")
            .filter(pl.col("ts") <= pl.col("prediction_time"))
            .group_by("_r", maintain_order=True)
            .agg(pl.exclude("codes", "ts").first(), pl.col("codes"), pl.col("ts"))
            .drop("_r")
            .select(whole.columns)
        )
    c_max, v_max = int(p["max_codes_per_visit"]), int(p["max_visits"])
    per_visit = (
        pl.concat([whole, part])
        .drop("ts", "_tmax")
        .with_columns(pl.col("codes").list.len().alias("_n"))
    )
    trunc["visits with codes beyond max_codes_per_visit (later codes dropped)"] = int(
        (per_visit["_n"] > c_max).sum()
    )
    trunc["codes dropped by max_codes_per_visit"] = int(
        (per_visit["_n"].cast(pl.Int64) - c_max).clip(lower_bound=0).sum()
    )
    per_sample = (
        per_visit.lazy()
        .with_columns(pl.col("codes").list.head(c_max))
        .sort("_i", "admit", "visit_id")
        .group_by("_i", maintain_order=True)
        .agg(
            pl.col("codes").alias("visit_codes"),
            pl.col("admit").alias("visit_starts"),
            ((pl.col("prediction_time") - pl.col("admit")).dt.total_microseconds() / _DAY_US)
            .cast(pl.Float32)
            .alias("visit_days"),
        )
        .with_columns(pl.col("visit_codes").list.len().alias("_nv"))
        .collect()
    )
    trunc["samples with visits beyond max_visits (oldest dropped)"] = int(
        (per_sample["_nv"] > v_max).sum()
    )
    per_sample = per_sample.with_columns(
        pl.col(c).list.tail(v_max) for c in ("visit_codes", "visit_starts", "visit_days")
    ).drop("_nv")
    return per_sample


def _event_inputs(
    events: pl.LazyFrame, labels: pl.DataFrame, p: dict[str, Any], trunc: dict[str, int]
) -> pl.DataFrame:
    """The window of each sample as rank ranges over the subject's time-sorted events, so
    a subject's long history is never copied once per sample: only the at most
    ``max_events`` most recent events at or before the cut are gathered (static facts
    first, always kept)."""
    e_max = int(p["max_events"])
    one_us = pl.duration(microseconds=1)
    subjects = labels.select(pl.col("subject_id").unique()).lazy()
    ev = _inputs_filter(
        events.join(subjects, on="subject_id", how="semi"), p.get("code_prefixes")
    ).select("subject_id", "time", "code", "numeric_value")
    timed_q = (
        ev.filter(pl.col("time").is_not_null())
        .sort("subject_id", "time", "code", "numeric_value", nulls_last=True)
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("subject_id").alias("_r"))
    )
    static_q = (
        ev.filter(pl.col("time").is_null())
        .sort("subject_id", "code")
        .group_by("subject_id", maintain_order=True)
        .agg(pl.col("code").alias("_sc"))
    )
    timed, static = pl.collect_all([timed_q, static_q])
    if not p.get("include_static", True):
        static = static.clear()
    # the last rank at or before a time, per subject
    last_rank = timed.group_by("subject_id", "time").agg(pl.col("_r").max()).sort("time")
    lab = labels.select(
        "_i",
        "subject_id",
        "prediction_time",
        "window_start",
        pl.min_horizontal("prediction_time", pl.col("index_discharge") - one_us).alias("_u"),
        (pl.col("window_start") - one_us).alias("_w"),
    )
    hi = lab.sort("_u").join_asof(
        last_rank.rename({"time": "_tu", "_r": "_hi"}),
        left_on="_u",
        right_on="_tu",
        by="subject_id",
        strategy="backward",
        check_sortedness=False,
    )
    if p.get("include_history", True):
        hi = hi.with_columns(pl.lit(-1, pl.Int64).alias("_lo"))
    else:
        hi = (
            hi.sort("_w")
            .join_asof(
                last_rank.rename({"time": "_tw", "_r": "_lo"}),
                left_on="_w",
                right_on="_tw",
                by="subject_id",
                strategy="backward",
                check_sortedness=False,
            )
            .with_columns(pl.col("_lo").fill_null(-1))
        )
    hi = hi.join(static, on="subject_id", how="left").with_columns(
        pl.col("_sc").fill_null(pl.lit([], pl.List(pl.String)))
    )
    n_static = pl.col("_sc").list.len().cast(pl.Int64)
    n_timed = (pl.col("_hi").fill_null(-1) - pl.col("_lo")).clip(lower_bound=0)
    room = (pl.lit(e_max, pl.Int64) - n_static).clip(lower_bound=0)
    hi = hi.with_columns(
        n_timed.alias("_nt"),
        (n_static + n_timed - e_max).clip(lower_bound=0).alias("_drop"),
        pl.max_horizontal(pl.col("_lo") + 1, pl.col("_hi").fill_null(-1) - room + 1).alias(
            "_start"
        ),
    )
    trunc["samples with events beyond max_events (oldest dropped)"] = int((hi["_drop"] > 0).sum())
    trunc["events dropped by max_events"] = int(hi["_drop"].sum())
    ranks = (
        hi.filter(pl.col("_nt") > 0)
        .select(
            "_i",
            "subject_id",
            "window_start",
            pl.int_ranges(pl.col("_start"), pl.col("_hi") + 1).alias("_r"),
        )
        .explode("_r")
    )
    hours = (pl.col("time") - pl.col("window_start")).dt.total_microseconds() / _HOUR_US
    got = (
        ranks.join(timed, on=["subject_id", "_r"])
        .sort("_i", "_r")
        .group_by("_i", maintain_order=True)
        .agg(
            pl.col("code").alias("_tc"),
            hours.cast(pl.Float32).alias("_th"),
            pl.col("numeric_value").alias("_tv"),
        )
    )
    per = hi.select("_i", "_sc").join(got, on="_i", how="left")
    per = per.select(
        "_i",
        pl.concat_list(
            pl.col("_sc").list.head(e_max), pl.col("_tc").fill_null(pl.lit([], pl.List(pl.String)))
        ).alias("event_codes"),
        pl.concat_list(
            pl.col("_sc").list.head(e_max).list.eval(pl.lit(0.0, pl.Float32)),
            pl.col("_th").fill_null(pl.lit([], pl.List(pl.Float32))),
        ).alias("event_hours"),
        pl.concat_list(
            pl.col("_sc").list.head(e_max).list.eval(pl.lit(None, pl.Float32)),
            pl.col("_tv").fill_null(pl.lit([], pl.List(pl.Float32))),
        ).alias("event_values"),
    )
    return per.filter(pl.col("event_codes").list.len() > 0)


def _sample_ids(frame: pl.DataFrame) -> pl.Expr:
    base = pl.concat_str(
        [
            pl.col("subject_id").cast(pl.String),
            pl.lit(":"),
            pl.col("prediction_time").dt.strftime("%Y-%m-%dT%H:%M:%S"),
        ]
    )
    rank = pl.int_range(pl.len()).over(base)
    return (
        pl.when(rank == 0)
        .then(base)
        .otherwise(pl.concat_str([base, pl.lit("#"), rank.cast(pl.String)]))
    )


def build_samples(
    events: pl.DataFrame | pl.LazyFrame,
    task: str,
    params: dict[str, Any] | None = None,
    *,
    labels: pl.DataFrame | None = None,
) -> Samples:
    """The labelled samples of ``task`` with their ragged inputs and the cohort flow.

    ``params`` are the task's (see ``TASKS[task].defaults``: ``max_visits``,
    ``max_codes_per_visit``, ``code_prefixes``, ``window_days``, ``hours``, ``max_events``,
    ``include_history``...). With ``labels`` (a MEDS label table made elsewhere), ``task``
    is ``"labels"`` and ``params["representation"]`` picks ``"visits"`` (default) or
    ``"events"`` (the ``hours`` before each prediction time).

    >>> samples = build_samples(read_mimic3(root), "mortality_next_visit")  # doctest: +SKIP
    """
    lf = events.lazy()
    if labels is not None:
        rep = (params or {}).get("representation", "visits")
        if rep not in ("visits", "events"):
            raise ConfigError(
                f"expected 'visits' or 'events', got {rep!r} in task.params.representation; pick one"
            )
        base = {
            "visits": get_task("mortality_next_visit"),
            "events": get_task("in_hospital_mortality_48h"),
        }[rep]
        p = task_params(base, {k: v for k, v in (params or {}).items() if k != "representation"})
        lab, cohort, label_type, class_names = user_labels(labels, lf)
        kind, task_name = rep, "labels"
        _, adm = start_flow("labels", p, lf)
        if kind == "events":
            lab = lab.with_columns(
                (
                    pl.col("prediction_time")
                    - pl.duration(microseconds=int(float(p["hours"]) * _HOUR_US))
                ).alias("window_start"),
                (pl.col("prediction_time") + pl.duration(microseconds=1)).alias("index_discharge"),
            )
        flow_ex = cohort["exclusions"]
    else:
        spec = get_task(task)
        p = task_params(spec, params)
        flow, adm = start_flow(task, p, lf)
        lab = spec.label_fn(adm, lf, p, flow)
        kind, task_name, label_type, class_names = (
            spec.kind,
            task,
            spec.label_type,
            spec.class_names,
        )
        cohort = flow.to_dict(lab, label_counts(spec, lab))
        flow_ex = cohort["exclusions"]
    lab = lab.with_row_index("_i")
    trunc: dict[str, int] = {}
    if kind == "visits":
        inputs = _visit_inputs(lf, adm, lab, p, trunc)
        count_col = "visit_codes"
    else:
        inputs = _event_inputs(lf, lab, p, trunc)
        count_col = "event_codes"
    frame = lab.join(inputs, on="_i", how="left")
    empty = pl.col(count_col).is_null() | (pl.col(count_col).list.len() == 0)
    n_empty = frame.filter(empty).height
    flow_ex.append(
        {
            "reason": "no input event at or before the prediction time",
            "count": n_empty,
            "unit": "samples",
        }
    )
    frame = frame.filter(~empty).sort("_i").drop("_i")
    frame = frame.with_columns(_sample_ids(frame).alias("sample_id"))
    drop = [c for c in ("visit_id", "index_discharge") if c in frame.columns]
    frame = frame.drop(drop)
    cohort["truncation"] = trunc
    cohort["samples"] = frame.height
    cohort["subjects"] = frame["subject_id"].n_unique() if frame.height else 0
    if task_name == "labels":
        value = "boolean_value" if label_type == "binary" else "integer_value"
        cohort["label_balance"] = (
            {class_names[0]: int((~frame[value]).sum()), class_names[1]: int(frame[value].sum())}
            if label_type == "binary"
            else {str(k): int(v) for k, v in frame[value].value_counts().sort(value).iter_rows()}
        )
    else:
        cohort["label_balance"] = label_counts(get_task(task_name), frame)
    if kind == "visits":
        dims = {
            "n_visits": int(frame["visit_codes"].list.len().max() or 1),  # type: ignore[arg-type]
            "n_codes": int(
                frame.select(pl.col("visit_codes").list.eval(pl.element().list.len()).list.max())
                .max()
                .item()
                or 1
            ),
        }
    else:
        dims = {"n_events": int(frame["event_codes"].list.len().max() or 1)}  # type: ignore[arg-type]
    return Samples(task_name, kind, label_type, list(class_names), frame, cohort, dims, p)

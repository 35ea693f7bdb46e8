"""Samples (ragged, per patient) and the arrays the EHR models take (docs: EHR_CONTRACT).

Flow::

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
from typing import Any

import numpy as np
import polars as pl

from medtorch.ehr import schema as S
from medtorch.ehr.cohort import start_flow
from medtorch.ehr.tasks import get_task, label_counts, task_params, user_labels
from medtorch.errors import ConfigError, DataError

_HOUR_US = 3.6e9
_DAY_US = 86_400e6


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
        .sort("subject_id", "time", "code")
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
    n_s = pl.col("_sc").list.len()
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
    del n_s
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


@dataclass
class EhrArrays:
    """What the models take: ``inputs`` in order (``x``, ``t``, and ``v`` for event
    samples), ``y`` (int64 (N,), or float32 (N, L) multi-label), ``groups`` (subject id as
    text), ``sample_ids`` and the class or label names."""

    inputs: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    sample_ids: np.ndarray
    class_names: list[str]
    label_names: list[str] | None
    meta: dict[str, Any]

    def to_array_dataset(self) -> Any:
        """A :class:`medtorch.data.dataset.ArrayDataset` (binary and multi-class tasks)."""
        from medtorch.data.dataset import ArrayDataset

        if self.label_names is not None:
            raise DataError(
                "expected a single-label task, got multi-label y in EhrArrays; "
                "the multi-label dataset needs float y"
            )
        return ArrayDataset(
            inputs=self.inputs,
            y=self.y,
            groups=self.groups,
            class_names=self.class_names,
            sample_ids=self.sample_ids,
            meta=self.meta,
        )


VOCAB_FORMAT = 1


@dataclass
class CodeVocab:
    """Code -> index (0 pad, 1 unknown, 2.. the codes seen at least ``min_count`` times in
    the training samples), the label names of a multi-label task and, for event samples,
    the per-code value mean and sd, all fitted on the training subjects only."""

    kind: str
    codes: list[str]
    min_count: int
    dims: dict[str, int]
    label_type: str
    class_names: list[str]
    label_names: list[str] | None = None
    value_stats: dict[str, tuple[float, float]] | None = None

    PAD = 0
    UNK = 1

    @property
    def vocab_size(self) -> int:
        return len(self.codes) + 2

    @classmethod
    def fit(
        cls, train: Samples, min_count: int = 1, label_min_count: int | None = None
    ) -> CodeVocab:
        """Fit on the training samples. A code counts once per visit of a subject (or per
        event), however many samples repeat that visit in their history."""
        if min_count < 1:
            raise ConfigError(
                f"expected min_count >= 1, got {min_count} in min_count; set it to 1 or more"
            )
        if not len(train):
            raise DataError(
                "expected training samples, got 0 in CodeVocab.fit; the training split is empty"
            )
        f = train.frame
        if train.kind == "visits":
            long = (
                f.select("subject_id", "visit_starts", "visit_codes")
                .explode(["visit_starts", "visit_codes"])
                .explode("visit_codes")
                .unique()
            )
            counts = long.group_by(pl.col("visit_codes").alias("code")).len()
            stats = None
        else:
            long = f.select(
                "subject_id", "window_start", "event_codes", "event_hours", "event_values"
            ).explode(["event_codes", "event_hours", "event_values"])
            long = long.with_columns(
                (
                    pl.col("window_start")
                    + pl.duration(
                        microseconds=(pl.col("event_hours").cast(pl.Float64) * _HOUR_US)
                        .round()
                        .cast(pl.Int64)
                    )
                ).alias("_t")
            ).unique(["subject_id", "_t", "event_codes", "event_values"])
            counts = long.group_by(pl.col("event_codes").alias("code")).len()
            vs = (
                long.filter(
                    pl.col("event_values").is_not_null() & pl.col("event_values").is_finite()
                )
                .group_by(pl.col("event_codes").alias("code"))
                .agg(
                    pl.col("event_values").cast(pl.Float64).mean().alias("m"),
                    pl.col("event_values").cast(pl.Float64).std().alias("s"),
                )
            )
            stats = {
                c: (float(m), float(s) if s is not None and s > 0 else 1.0)
                for c, m, s in vs.sort("code").iter_rows()
            }
        kept = (
            counts.filter(pl.col("len") >= min_count)
            .sort(["len", "code"], descending=[True, False])["code"]
            .to_list()
        )
        label_names = None
        if train.label_type == "multilabel":
            lmin = int(
                label_min_count
                if label_min_count is not None
                else train.params.get("label_min_count", 1)
            )
            lc = f.select(pl.col("label_codes").explode()).to_series().value_counts()
            label_names = sorted(lc.filter(pl.col("count") >= lmin)[lc.columns[0]].to_list())
        return cls(
            train.kind,
            kept,
            min_count,
            dict(train.dims),
            train.label_type,
            list(train.class_names),
            label_names,
            stats,
        )

    def _index(self, codes: pl.Expr) -> pl.Expr:
        mapping = {c: i + 2 for i, c in enumerate(self.codes)}
        return codes.replace_strict(mapping, default=self.UNK, return_dtype=pl.Int64)

    def transform(self, samples: Samples) -> EhrArrays:
        """The arrays of EHR_CONTRACT for ``samples`` (any split), padded to ``dims``."""
        if samples.kind != self.kind:
            raise ConfigError(
                f"expected {self.kind} samples, got {samples.kind} in CodeVocab.transform; "
                "use the vocabulary fitted on this task"
            )
        f = samples.frame.with_row_index("_s")
        n = f.height
        meta: dict[str, Any] = {"vocab_size": self.vocab_size, **self.dims}
        if self.kind == "visits":
            V, C = self.dims["n_visits"], self.dims["n_codes"]
            vis = f.select(
                "_s",
                "visit_codes",
                "visit_days",
                pl.int_ranges(pl.col("visit_codes").list.len()).alias("_v"),
                (pl.col("visit_codes").list.len().cast(pl.Int64) - V)
                .clip(lower_bound=0)
                .alias("_off"),
            ).explode(["visit_codes", "visit_days", "_v"])
            vis = vis.with_columns((pl.col("_v") - pl.col("_off")).alias("_v")).filter(
                pl.col("_v") >= 0
            )
            t = np.zeros((n, V), dtype=np.float32)
            t[vis["_s"].to_numpy(), vis["_v"].to_numpy()] = vis["visit_days"].to_numpy()
            codes = (
                vis.select(
                    "_s",
                    "_v",
                    "visit_codes",
                    pl.int_ranges(pl.col("visit_codes").list.len()).alias("_c"),
                )
                .explode(["visit_codes", "_c"])
                .filter(pl.col("_c") < C)
            )
            codes = codes.with_columns(self._index(pl.col("visit_codes")).alias("_k"))
            x = np.zeros((n, V, C), dtype=np.int64)
            x[codes["_s"].to_numpy(), codes["_v"].to_numpy(), codes["_c"].to_numpy()] = codes[
                "_k"
            ].to_numpy()
            meta["unknown_codes"] = int((codes["_k"] == self.UNK).sum())
            inputs: dict[str, np.ndarray] = {"x": x, "t": t}
        else:
            E = self.dims["n_events"]
            ev = f.select(
                "_s",
                "event_codes",
                "event_hours",
                "event_values",
                pl.int_ranges(pl.col("event_codes").list.len()).alias("_e"),
                (pl.col("event_codes").list.len().cast(pl.Int64) - E)
                .clip(lower_bound=0)
                .alias("_off"),
            ).explode(["event_codes", "event_hours", "event_values", "_e"])
            ev = ev.with_columns((pl.col("_e") - pl.col("_off")).alias("_e")).filter(
                pl.col("_e") >= 0
            )
            stats = pl.DataFrame(
                {
                    "event_codes": list((self.value_stats or {}).keys()),
                    "_m": [m for m, _ in (self.value_stats or {}).values()],
                    "_sd": [s for _, s in (self.value_stats or {}).values()],
                },
                schema={"event_codes": pl.String, "_m": pl.Float64, "_sd": pl.Float64},
            )
            ev = ev.join(stats, on="event_codes", how="left").with_columns(
                self._index(pl.col("event_codes")).alias("_k"),
                ((pl.col("event_values").cast(pl.Float64) - pl.col("_m")) / pl.col("_sd"))
                .fill_null(0.0)
                .fill_nan(0.0)
                .cast(pl.Float32)
                .alias("_z"),
            )
            x = np.zeros((n, E), dtype=np.int64)
            t = np.zeros((n, E), dtype=np.float32)
            v = np.zeros((n, E), dtype=np.float32)
            s_idx, e_idx = ev["_s"].to_numpy(), ev["_e"].to_numpy()
            x[s_idx, e_idx] = ev["_k"].to_numpy()
            t[s_idx, e_idx] = ev["event_hours"].to_numpy()
            z = ev["_z"].to_numpy()
            v[s_idx, e_idx] = np.where(np.isfinite(z), z, 0.0)
            meta["unknown_codes"] = int((ev["_k"] == self.UNK).sum())
            inputs = {"x": x, "t": t, "v": v}
        if self.label_type == "multilabel":
            assert self.label_names is not None
            y = np.zeros((n, len(self.label_names)), dtype=np.float32)
            lab = (
                f.select("_s", "label_codes")
                .explode("label_codes")
                .with_columns(
                    pl.col("label_codes")
                    .replace_strict(
                        {c: i for i, c in enumerate(self.label_names)},
                        default=-1,
                        return_dtype=pl.Int64,
                    )
                    .alias("_l")
                )
                .filter(pl.col("_l") >= 0)
            )
            y[lab["_s"].to_numpy(), lab["_l"].to_numpy()] = 1.0
        elif "boolean_value" in f.columns:
            y = f["boolean_value"].cast(pl.Int64).to_numpy()
        else:
            y = f["integer_value"].cast(pl.Int64).to_numpy()
        return EhrArrays(
            inputs,
            y,
            samples.groups,
            samples.sample_ids,
            list(self.class_names),
            list(self.label_names) if self.label_names is not None else None,
            meta,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: saved in the run folder so ``predict`` maps codes the same way."""
        return {
            "format": VOCAB_FORMAT,
            "kind": self.kind,
            "codes": self.codes,
            "min_count": self.min_count,
            "dims": self.dims,
            "label_type": self.label_type,
            "class_names": self.class_names,
            "label_names": self.label_names,
            "value_stats": {k: list(v) for k, v in self.value_stats.items()}
            if self.value_stats is not None
            else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeVocab:
        if data.get("format") != VOCAB_FORMAT:
            raise DataError(
                f"expected vocabulary format {VOCAB_FORMAT}, got {data.get('format')!r} in vocab.json; "
                "retrain the run with this medtorch"
            )
        stats = data.get("value_stats")
        return cls(
            data["kind"],
            list(data["codes"]),
            int(data["min_count"]),
            dict(data["dims"]),
            data["label_type"],
            list(data["class_names"]),
            data.get("label_names"),
            {k: (float(v[0]), float(v[1])) for k, v in stats.items()}
            if stats is not None
            else None,
        )

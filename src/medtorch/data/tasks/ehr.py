"""EHR tasks: patient timelines from MIMIC-III, MIMIC-IV, MEDS folders or any long event table.

Each task of :data:`medtorch.ehr.TASKS` is registered here under its own name
(``mortality_next_visit``, ``readmission_30d``, ``next_visit_diagnosis``,
``in_hospital_mortality_48h``, ``long_stay_7d``). The source is turned into the MEDS event
table once and cached (:func:`medtorch.ehr.load_samples`), the task's labels and cohort
flow are computed on it, and every sample becomes one row of the dataset, whose raw input
``x`` holds the sample's own codes and times. The encoder (:class:`VocabEncoder`) fits the
code vocabulary (and, for event samples, each code's value mean and sd) on the training
subjects only, then turns every partition into the arrays of the models' contract:
visits ``x`` (N, V, C) int64 codes and ``t`` (N, V) days before the prediction time, or
events ``x`` (N, E), ``t`` (N, E) hours and ``v`` (N, E) standardised values.

``task.params``: ``source`` (a dataset folder: mimic3_demo, mimic4_demo, mimic4_demo_meds,
or any folder of yours with ``format``), ``path`` (the folder or table itself), ``format``
(``mimic3``, ``mimic4``, ``meds`` or ``events``), ``columns`` (for ``events``: the table's
names for subject_id, time, code, value), ``tables`` (MIMIC tables to read),
``min_count`` (codes seen fewer times in training become the unknown code), ``cache_dir``,
and the task's own settings (e.g. ``window_days``, ``max_visits``, ``hours``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.tasks.registry import InputKind, TaskExample, register_task, source_path
from medtorch.errors import ConfigError, DataError, fmt

FORMATS = {"mimic3_demo": "mimic3", "mimic4_demo": "mimic4", "mimic4_demo_meds": "events"}
TABLES = {"mimic4_demo_meds": "mimic_iv_demo_meds_events.parquet"}
DEFAULT_COLUMNS = {"mimic4_demo_meds": {"value": "value"}}
# the columns of a sample that its raw row keeps: what the vocabulary's fit and transform read
VISIT_COLUMNS = ("subject_id", "visit_starts", "visit_codes", "visit_days")
EVENT_COLUMNS = ("subject_id", "window_start", "event_codes", "event_hours", "event_values")


def _source(
    data_dir: Path | None, source: str, path: str | None, format: str | None,
    columns: Mapping[str, str] | None, tables: list[str] | None,
) -> tuple[str, Path, dict[str, Any]]:  # fmt: skip
    fmt_name = format or FORMATS.get(source)
    if fmt_name is None:
        raise ConfigError(fmt(f"task.params.format (one of mimic3, mimic4, meds, events) for "
                              f"source {source!r}", None, "task.params.format",
                              "name the format of your folder or table"))  # fmt: skip
    root = source_path(data_dir, path, source)
    if path is None and source in TABLES:
        root = root / TABLES[source]
    config: dict[str, Any] = {}
    if fmt_name == "events":
        config["columns"] = dict(columns or DEFAULT_COLUMNS.get(source, {}))
    elif columns:
        raise ConfigError(fmt("no column mapping for a MIMIC or MEDS source", columns,
                              "task.params.columns", "drop it (it is for format: events)"))  # fmt: skip
    if tables is not None:
        config["tables"] = list(tables)
    if not root.exists():
        raise DataError(fmt(f"the {fmt_name} source", f"no such path {root}",
                            "task.params.source / path", f"run `medtorch data info {source}`"))  # fmt: skip
    return fmt_name, root, config


def _rows(frame: Any, kind: str) -> np.ndarray:
    """Each sample's own inputs as one object (the raw ``x``): a tuple of its columns."""
    cols = VISIT_COLUMNS if kind == "visits" else EVENT_COLUMNS
    out = np.empty(frame.height, dtype=object)
    out[:] = list(frame.select(cols).iter_rows())
    return out


def build_ehr_dataset(
    task: str,
    data_dir: Path | None,
    source: str = "mimic3_demo",
    path: str | None = None,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    tables: list[str] | None = None,
    min_count: int = 1,
    cache_dir: str | None = None,
    **params: Any,
) -> ArrayDataset:
    """The samples of EHR ``task`` as a dataset of raw rows (see the module doc)."""
    from medtorch.ehr import load_samples

    fmt_name, root, config = _source(data_dir, source, path, format, columns, tables)
    samples = load_samples(fmt_name, root, task, params, config, cache_dir=cache_dir)
    frame = samples.frame
    if samples.label_type == "multilabel":
        # every category of the cohort's next visits; the encoder keeps those of the training
        # subjects (:meth:`VocabEncoder.relabel`), so no test-only category is a label
        codes = sorted({c for row in frame["label_codes"].to_list() for c in (row or [])})
        if not codes:
            raise DataError(f"expected next-visit diagnosis categories, got none in {root}; "
                            "check that the source has diagnoses")  # fmt: skip
        index = {c: i for i, c in enumerate(codes)}
        y = np.zeros((frame.height, len(codes)), dtype=np.float32)
        for i, row in enumerate(frame["label_codes"].to_list()):
            y[i, [index[c] for c in (row or [])]] = 1.0
        class_names = codes
    else:
        col = "boolean_value" if "boolean_value" in frame.columns else "integer_value"
        y = frame[col].cast(int).to_numpy()
        class_names = list(samples.class_names)
    cohort = dict(samples.cohort)
    dropped = {str(e["reason"]): int(e["count"]) for e in cohort.get("exclusions", [])
               if e.get("unit") == "samples" and int(e.get("count", 0))}  # fmt: skip
    counts = (
        {c: int(v) for c, v in zip(class_names, y.sum(0))}
        if y.ndim == 2
        else {c: int((y == i).sum()) for i, c in enumerate(class_names)}
    )
    return ArrayDataset(
        inputs={"x": _rows(frame, samples.kind)},
        y=y,
        groups=samples.groups,
        class_names=class_names,
        sample_ids=samples.sample_ids.astype(str),
        meta={
            "source": str(root),
            "dataset": source if path is None else None,  # a path of yours: no dataset to check
            "group_unit": "patient",
            "ehr": {
                "task": task,
                "format": fmt_name,
                "kind": samples.kind,
                "label_type": samples.label_type,
                "class_names": list(samples.class_names),
                "dims": dict(samples.dims),
                "params": dict(samples.params),
                "min_count": int(min_count),
            },
            "label_space": "every 3-character diagnosis category of the cohort's next visits "
            "(candidates: the encoder keeps those of the training subjects)"
            if y.ndim == 2
            else None,
            "cohort": {
                **cohort,
                # the shared cohort form: candidate samples, those excluded (by reason), kept
                "rows_read": frame.height + sum(dropped.values()),
                "rows_dropped": dropped,
                "class_counts": counts,
            },
        },
    )


class VocabEncoder:
    """The EHR tasks' encoder: the code vocabulary fitted on the training subjects
    (:class:`medtorch.ehr.CodeVocab`), saved as ``vocab.json``; turns raw rows into arrays.
    For a multi-label task it fits the label space too: the categories of the training
    samples' targets (at least ``label_min_count`` of them), and :meth:`relabel` keeps only
    those columns of ``y``, counting the rest in the cohort."""

    filename = "vocab.json"
    raw_inputs = ("x",)  # one raw row per sample; transform makes the declared inputs

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab

    @classmethod
    def fit(
        cls, ds: ArrayDataset, train_index: np.ndarray, settings: Mapping[str, Any]
    ) -> VocabEncoder:
        from medtorch.ehr import CodeVocab, code_descriptions

        spec = ds.meta["ehr"]
        labels = None
        if spec["label_type"] == "multilabel":
            names = np.asarray(ds.class_names, dtype=object)
            labels = [list(names[row > 0.5]) for row in np.asarray(ds.y)[train_index]]
        train = _samples(ds.inputs["x"][train_index], spec, labels)
        vocab = CodeVocab.fit(train, min_count=int(spec["min_count"]))
        # the vocabulary's readable names, read now from the source's dictionaries (none: the
        # codes as they are), so the run folder names them without the source
        vocab.descriptions = (
            code_descriptions(spec.get("format"), ds.meta.get("source"), vocab.codes) or None
        )
        if labels is not None and not vocab.label_names:
            raise DataError(fmt("next-visit diagnosis categories among the training targets",
                                "none", "the training partition",
                                "lower task.params.label_min_count or use a larger cohort"))  # fmt: skip
        return cls(vocab)

    def relabel(self, ds: ArrayDataset) -> ArrayDataset:
        """``ds`` with the fitted label space: of a multi-label ``y``, the columns of the
        categories seen in training, in their order; the cohort counts the categories dropped
        (seen only outside the training subjects, or too rarely) and the samples left with
        none. A single-label ``ds`` is returned as it is."""
        names = self.vocab.label_names
        if names is None or not ds.multilabel:
            return ds
        col = {c: j for j, c in enumerate(ds.class_names)}
        if missing := [c for c in names if c not in col]:
            raise DataError(fmt("the fitted label categories among the dataset's", missing[0],
                                "vocab.json label_names", "fit the encoder on this dataset"))  # fmt: skip
        y = np.ascontiguousarray(np.asarray(ds.y)[:, [col[c] for c in names]])
        dropped = len(ds.class_names) - len(names)
        cohort = dict(ds.meta.get("cohort", {}))
        cohort["exclusions"] = [*cohort.get("exclusions", []), {
            "reason": "next-visit diagnosis categories not among the training subjects' "
                      "targets (or in fewer than label_min_count="
                      f"{int(ds.meta['ehr']['params'].get('label_min_count', 1))} training "
                      "samples): dropped from the targets",
            "count": dropped, "unit": "label categories"}]  # fmt: skip
        cohort["label_space"] = {
            "fitted_on": "training subjects",
            "categories_in_cohort": len(ds.class_names),
            "categories_kept": len(names),
            "categories_dropped": dropped,
            "samples_with_no_kept_category": int((y.sum(1) == 0).sum()),
        }
        cohort["class_counts"] = {c: int(v) for c, v in zip(names, y.sum(0))}
        meta = {**ds.meta, "cohort": cohort,
                "label_space": "the 3-character diagnosis categories of the training "
                               "subjects' next visits"}  # fmt: skip
        return ArrayDataset(inputs=ds.inputs, y=y, groups=ds.groups, class_names=list(names),
                            sample_ids=ds.sample_ids, meta=meta)  # fmt: skip

    def transform(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        v = self.vocab
        spec = {"task": "", "kind": v.kind, "class_names": v.class_names, "dims": v.dims,
                "params": {}, "label_type": v.label_type}  # fmt: skip
        rows = inputs["x"]
        if len(rows) == 0:
            raise DataError(
                "expected samples to encode, got none in the EHR inputs; check the split"
            )
        # no targets here (relabel makes y): a multi-label vocabulary reads empty ones
        labels: list[list[str]] | None = None
        if v.label_type == "multilabel":
            labels = [[] for _ in rows]
        return dict(v.transform(_samples(rows, spec, labels)).inputs)

    def hints(self) -> dict[str, int]:
        return {"n_inputs": int(self.vocab.vocab_size)}

    def decode(self, index: int) -> str:
        """The code behind a code index (0 padding, 1 unknown), with its readable name where
        the source's dictionary has one: ``DIAGNOSIS//ICD9CM//4019 (Unspecified essential
        hypertension)``."""
        if index < 2:
            return ("<pad>", "<unknown>")[index]
        from medtorch.ehr.names import describe

        return describe(str(self.vocab.codes[index - 2]), self.vocab.descriptions)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.vocab.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VocabEncoder:
        from medtorch.ehr import CodeVocab

        return cls(CodeVocab.from_dict(d))


def _samples(
    rows: np.ndarray, spec: Mapping[str, Any], labels: list[list[str]] | None = None
) -> Any:
    """A :class:`medtorch.ehr.Samples` of the rows' inputs (the vocabulary's fit and
    transform read these columns only) and, for a multi-label task, each row's target
    categories ``labels``; otherwise the label type is binary here (labels stay the
    dataset's)."""
    import polars as pl

    from medtorch.ehr import Samples

    cols = VISIT_COLUMNS if spec["kind"] == "visits" else EVENT_COLUMNS
    data: dict[str, Any] = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    n = len(rows)
    data["sample_id"] = [str(i) for i in range(n)]
    if labels is None:
        data["boolean_value"] = [False] * n
    frame = pl.DataFrame(data)
    if labels is not None:
        frame = frame.with_columns(pl.Series("label_codes", labels, dtype=pl.List(pl.String)))
    return Samples(spec["task"], spec["kind"], "binary" if labels is None else "multilabel",
                   list(spec["class_names"]), frame, {}, dict(spec["dims"]),
                   dict(spec["params"]))  # fmt: skip


def write_example(folder: Path) -> dict[str, Any]:
    """A tiny long event table (format ``events``) for the generic task tests: 12 subjects,
    three admissions each (the last one 10 days long), labs and drugs during the stays,
    diagnoses at discharge, a death in the last admission of every third subject."""
    import datetime as dt

    import polars as pl

    rows: list[tuple[int, dt.datetime | None, str, float | None]] = []
    for sid in range(1, 13):
        rows.append((sid, dt.datetime(1950, 1, 1), "MEDS_BIRTH", None))
        for k in range(3):
            start = dt.datetime(2100, 1, 1) + dt.timedelta(days=40 * k + sid)
            end = start + dt.timedelta(days=10 if k == 2 else 3)
            rows.append((sid, start, "HOSPITAL_ADMISSION", None))
            for h in (2, 20, 40, 60):
                rows.append((sid, start + dt.timedelta(hours=h), f"LAB//{50900 + (sid + h) % 4}",
                             float(sid + h)))  # fmt: skip
            rows.append(
                (sid, start + dt.timedelta(hours=5), f"MEDICATION//drug{(sid * k) % 3}", None)
            )
            for code in (f"DIAGNOSIS//ICD9CM//{401 + (sid + k) % 5}", "DIAGNOSIS//ICD9CM//4280"):
                rows.append((sid, end, code, None))
            if k == 2 and sid % 3 == 0:
                rows.append((sid, end - dt.timedelta(hours=1), "MEDS_DEATH", None))
            rows.append((sid, end, "HOSPITAL_DISCHARGE", None))
    frame = pl.DataFrame(rows, schema={"subject_id": pl.Int64, "time": pl.Datetime("us"),
                                       "code": pl.String, "value": pl.Float64}, orient="row")  # fmt: skip
    path = folder / "events.parquet"
    frame.write_parquet(path)
    return {"source": "tiny", "path": str(path), "format": "events",
            "columns": {"value": "value"}, "cache_dir": str(folder / "cache")}  # fmt: skip


def read_events_input(path: Path, params: Mapping[str, Any], task_name: str) -> Any:
    """The EHR tasks' ``reader``: new patients' events (a table, or a folder in the run's
    source format) -> one sample per patient, predicted at the patient's last event, with the
    run's representation (visits, or the ``hours`` before it as events)."""
    import polars as pl

    from medtorch.data.tasks.registry import PredictInput
    from medtorch.ehr import build_samples, get_task, load_events

    path = Path(path)
    task = get_task(task_name)
    source = str(params.get("source", ""))
    fmt_name = "events" if path.is_file() else (params.get("format") or FORMATS.get(source))
    if fmt_name is None:
        raise ConfigError(fmt("an event table file, or a folder in the run's format", str(path),
                              "medtorch predict", "pass the new patients' events"))  # fmt: skip
    config: dict[str, Any] = {}
    if fmt_name == "events":
        config["columns"] = dict(params.get("columns") or DEFAULT_COLUMNS.get(source, {}))
    events, _ = load_events(fmt_name, path, config, use_cache=False)
    last = (
        events.lazy().filter(pl.col("time").is_not_null()).group_by("subject_id")
        .agg(pl.col("time").max().alias("prediction_time")).sort("subject_id").collect()
    )  # fmt: skip
    labels = last.with_columns(pl.lit(False).alias("boolean_value"))
    base = "mortality_next_visit" if task.kind == "visits" else "in_hospital_mortality_48h"
    keep = set(get_task(base).defaults)
    own = {k: v for k, v in params.items() if k in keep}
    samples = build_samples(events, "labels", {**own, "representation": task.kind}, labels=labels)
    if not len(samples):
        raise DataError(fmt("patients with events before their last one", 0, str(path),
                            "check the table's subject_id, time and code columns"))  # fmt: skip
    ids = [str(s) for s in samples.frame["subject_id"].to_list()]
    return PredictInput({"x": _rows(samples.frame, samples.kind)}, ids)


VISITS: dict[str, InputKind] = {"x": "codes", "t": "times"}
EVENTS: dict[str, InputKind] = {"x": "codes", "t": "times", "v": "values"}


def _register(name: str, inputs: dict[str, InputKind], metrics: tuple[str, ...]) -> None:
    def build(data_dir: Path | None, **params: Any) -> ArrayDataset:
        return build_ehr_dataset(name, data_dir, **params)

    def reader(path: Path, hints: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        return read_events_input(path, params, name)

    from medtorch.ehr import get_task as ehr_task

    build.__doc__ = f"EHR: {ehr_task(name).description} (MIMIC-III, MIMIC-IV, MEDS, event tables)."
    register_task(name, inputs=inputs, metrics=metrics, encoder=VocabEncoder, reader=reader,
                  example=TaskExample(write_example, unlabelled=0))(build)  # fmt: skip


for _name, _inputs, _metrics in (
    ("mortality_next_visit", VISITS, ("classification",)),
    ("readmission_30d", VISITS, ("classification",)),
    ("next_visit_diagnosis", VISITS, ("multilabel",)),
    ("in_hospital_mortality_48h", EVENTS, ("classification",)),
    ("long_stay_7d", EVENTS, ("classification",)),
):
    _register(_name, _inputs, _metrics)

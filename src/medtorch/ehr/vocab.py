"""Code vocabulary and the arrays the EHR models take (docs: EHR_CONTRACT).

:class:`CodeVocab` is fitted on the training subjects' samples only (after the split):
code -> index (0 padding, 1 unknown), the label names of a multi-label task and, for event
samples, each code's value mean and sd. :meth:`CodeVocab.transform` turns any
:class:`~medtorch.ehr.samples.Samples` into :class:`EhrArrays`; ``to_dict``/``from_dict``
keep the vocabulary as JSON in the run folder, so ``predict`` maps new patients' codes the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from medtorch.ehr.samples import _HOUR_US, Samples
from medtorch.errors import ConfigError, DataError


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
    the per-code value mean and sd, all fitted on the training subjects only; and, where the
    source has a dictionary, the readable names of its codes (``descriptions``)."""

    kind: str
    codes: list[str]
    min_count: int
    dims: dict[str, int]
    label_type: str
    class_names: list[str]
    label_names: list[str] | None = None
    value_stats: dict[str, tuple[float, float]] | None = None
    # readable names of codes, from the source's dictionaries (medtorch.ehr.names), for reports
    descriptions: dict[str, str] | None = None

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
            "descriptions": self.descriptions,
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
            dict(data["descriptions"]) if data.get("descriptions") else None,
        )

"""Metric families: the named sets of metrics a task declares (``register_task(metrics=...)``).

The first family a task names is its base: its result is the top level of a partition's
entry in ``metrics.json`` (``overall``, ``per_class``...). Every further family is stored
under its own name, and the run report draws it as one section from its declaration
(title, the key of its explanatory note, the per-class columns), so neither the pipeline
nor the report knows any family by name.

A family reads the settings it needs from the dataset's ``meta`` (e.g. ``ordinal``'s
``referable_from``) and returns None when the dataset has none (the family does not apply).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medtorch.errors import ConfigError


@dataclass(frozen=True)
class ScoreArgs:
    """What every family is scored from: labels, probabilities, classes, the dataset's meta,
    the bootstrap groups (None: resample samples) and the bootstrap settings."""

    y: np.ndarray
    proba: np.ndarray
    class_names: list[str]
    meta: dict[str, Any]
    groups: np.ndarray | None
    n_bootstrap: int
    ci_level: float
    seed: int

    @property
    def boot(self) -> dict[str, Any]:
        return {"groups": self.groups, "n_bootstrap": self.n_bootstrap,
                "ci_level": self.ci_level, "seed": self.seed}  # fmt: skip


@dataclass(frozen=True)
class MetricFamily:
    """score: ScoreArgs -> JSON-ready dict, or None when it does not apply.
    title: the report section's heading; note_key: the result key whose text is shown under
    it; per_class_columns: the metrics of its per-class table (None: no such table)."""

    name: str
    score: Callable[[ScoreArgs], dict[str, Any] | None]
    title: str
    note_key: str | None = None
    per_class_columns: tuple[str, ...] | None = None


def _classification(a: ScoreArgs) -> dict[str, Any]:
    from medtorch.metrics.classification import evaluate

    return evaluate(a.y, a.proba, a.class_names, **a.boot)


def _multilabel(a: ScoreArgs) -> dict[str, Any]:
    from medtorch.metrics.multilabel import multilabel_report

    return multilabel_report(a.y, a.proba, a.class_names, **a.boot)


def _aami(a: ScoreArgs) -> dict[str, Any]:
    from medtorch.metrics.aami import aami_report

    return aami_report(a.y, a.proba.argmax(1), class_names=tuple(a.class_names), **a.boot)


def _ordinal(a: ScoreArgs) -> dict[str, Any] | None:
    from medtorch.metrics.ordinal import ordinal_report

    if not (spec := a.meta.get("ordinal")):
        return None
    return ordinal_report(a.y, a.proba, a.class_names,
                          referable_from=int(spec["referable_from"]), **a.boot)  # fmt: skip


def _decision(a: ScoreArgs) -> dict[str, Any] | None:
    from medtorch.metrics.ordinal import decision_report

    if not (spec := a.meta.get("decision")):
        return None
    return decision_report(a.y, a.proba, a.class_names, positive=list(spec["positive"]),
                           name=str(spec["name"]), **a.boot)  # fmt: skip


FAMILIES: dict[str, MetricFamily] = {
    f.name: f
    for f in (
        MetricFamily("classification", _classification, "overall"),
        MetricFamily("multilabel", _multilabel, "labels (multi-label)"),
        MetricFamily(
            "aami", _aami, "AAMI heartbeat classes", "standard", ("Se", "+P", "F1", "specificity")
        ),
        MetricFamily("ordinal", _ordinal, "ordinal grade", "referable"),
        MetricFamily("decision", _decision, "clinical decision", "decision"),
    )
}


def register_family(family: MetricFamily) -> MetricFamily:
    """Add a metric family (a task module may bring its own)."""
    if family.name in FAMILIES and FAMILIES[family.name] is not family:
        raise ConfigError(f"expected a new metric family name, got {family.name!r} in "
                          "register_family; pick another name")  # fmt: skip
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> MetricFamily:
    if name not in FAMILIES:
        raise ConfigError(
            f"expected a metric family ({', '.join(FAMILIES)}), got {name!r} in a task's "
            "register_task(metrics=...); register the family first"
        )
    return FAMILIES[name]


def score_families(names: Sequence[str], args: ScoreArgs) -> dict[str, Any]:
    """The first family's result with every further family's result under its name."""
    base, *extra = [get_family(n) for n in names]
    out = base.score(args)
    assert out is not None, f"base metric family {base.name} returned nothing"
    for fam in extra:
        if (result := fam.score(args)) is not None:
            out[fam.name] = result
    return out

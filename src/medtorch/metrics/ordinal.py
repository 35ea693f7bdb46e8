"""Clinical decisions made from multi-class probabilities, and ordinal grades, with bootstrap CIs.

A multi-class model often serves one yes/no decision: refer for diabetic retinopathy when
the grade is moderate or worse (Gulshan et al. 2016), biopsy when a skin lesion is a
(pre)malignant class (Esteva et al. 2017). :func:`decision_report` scores that decision:
AUROC of P(positive) = the summed probability of the positive classes, and sensitivity /
specificity of calling positive when that probability is at least 0.5.

:func:`ordinal_report` adds, for graded labels (e.g. DR grade 0-4), the quadratic weighted
kappa (the DR-grading competitions' metric; sklearn ``cohen_kappa_score(weights=
"quadratic")``) and the mean absolute grade error of the arg-max grade, with "referable"
(grade >= ``referable_from``) as the decision.

CIs: percentile bootstrap over samples, or over whole groups when ``groups`` is given, with
the same resampling weights as :func:`medtorch.metrics.classification.evaluate`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sklearn.metrics as skm

from medtorch.errors import MedtorchError, fmt
from medtorch.metrics import bootstrap as bs
from medtorch.metrics.classification import (
    check_args,
    check_groups,
    check_labels,
    check_proba,
    ci_method,
)

Values = Callable[[np.ndarray | None], dict[str, float]]


def _decision(
    y_pos: np.ndarray, p_pos: np.ndarray, w: np.ndarray | None, key: str
) -> dict[str, float]:
    call = p_pos >= 0.5
    ww = np.ones(len(y_pos)) if w is None else w
    pos, neg = (ww * y_pos).sum(), (ww * ~y_pos).sum()
    auroc = np.nan
    if pos > 0 and neg > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auroc = skm.roc_auc_score(y_pos, p_pos, sample_weight=w)
    return {
        f"{key}_auroc": float(auroc),
        f"{key}_sensitivity": float((ww * (y_pos & call)).sum() / pos) if pos else np.nan,
        f"{key}_specificity": float((ww * (~y_pos & ~call)).sum() / neg) if neg else np.nan,
    }


def _report(
    values: Values,
    groups: np.ndarray | None,
    n: int,
    n_bootstrap: int,
    ci_level: float,
    seed: int,
    header: dict[str, Any],
) -> dict[str, Any]:
    point = values(None)
    dist: dict[str, list[float]] = {m: [] for m in point}
    if n_bootstrap > 0:
        gidx, n_groups = bs.group_index(groups, n)
        for block in bs.resample_weights(gidx, n_groups, n_bootstrap, seed):
            for w in block:
                for m, v in values(w).items():
                    dist[m].append(v)
    out = {**header, "ci_method": ci_method(groups, n_bootstrap)}
    for m, v in point.items():
        out[m] = bs.entry(v, np.asarray(dist[m]) if n_bootstrap > 0 else None, ci_level)
    return out


def _checked(
    y_true: Any, proba: Any, k: int, groups: Any, n_bootstrap: int, ci_level: float, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    check_args(n_bootstrap, ci_level, where)
    y = check_labels(y_true, k, "y_true", where)
    return y, check_proba(proba, len(y), k), check_groups(groups, len(y), where)


def decision_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    positive: Sequence[int],
    name: str = "positive",
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The yes/no decision "one of the ``positive`` classes" (see the module doc).

    >>> y = np.array([0, 1, 2, 2]); p = np.array([[.8, .1, .1], [.2, .2, .6], [.1, .1, .8], [.5, .3, .2]])
    >>> r = decision_report(y, p, ["nv", "bkl", "mel"], positive=[2], name="malignant", n_bootstrap=0)
    >>> r["malignant_auroc"]["value"], r["malignant_sensitivity"]["value"]
    (0.75, 0.5)
    """
    k = len(class_names)
    y, p, g = _checked(y_true, proba, k, groups, n_bootstrap, ci_level, "decision_report")
    if not positive or not set(positive) < set(range(k)):
        raise MedtorchError(fmt(f"positive classes among 0..{k - 1} (some, not all)", list(positive),
                                "decision_report(positive)",
                                "name the class indices that make the decision positive"))  # fmt: skip
    cols = sorted(set(positive))
    y_pos, p_pos = np.isin(y, cols), p[:, cols].sum(1)
    label = f"{name} = {' or '.join(class_names[i] for i in cols)}; called at P >= 0.5"
    return _report(lambda w: _decision(y_pos, p_pos, w, name), g, len(y), n_bootstrap,
                   ci_level, seed, {"decision": label})  # fmt: skip


def ordinal_report(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    referable_from: int,
    groups: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Graded labels: quadratic kappa, grade error, and "referable" (grade >= ``referable_from``).

    >>> y = np.array([0, 1, 2, 3]); p = np.eye(4)[[0, 1, 3, 3]] * 0.9 + 0.025
    >>> r = ordinal_report(y, p, list("abcd"), referable_from=2, n_bootstrap=0)
    >>> r["referable_auroc"]["value"], r["grade_mae"]["value"]
    (1.0, 0.25)
    """
    k = len(class_names)
    y, p, g = _checked(y_true, proba, k, groups, n_bootstrap, ci_level, "ordinal_report")
    if not 0 < referable_from < k:
        raise MedtorchError(fmt(f"referable_from in 1..{k - 1}", referable_from,
                                "ordinal_report(referable_from)",
                                "give the first grade that counts as referable"))  # fmt: skip
    pred = p.argmax(1)
    y_pos, p_pos = y >= referable_from, p[:, referable_from:].sum(1)

    def values(w: np.ndarray | None) -> dict[str, float]:
        ww = np.ones(len(y)) if w is None else w
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kappa = skm.cohen_kappa_score(y, pred, weights="quadratic", sample_weight=w)
        return {
            "quadratic_kappa": float(kappa),
            "grade_mae": float((ww * np.abs(pred - y)).sum() / ww.sum()),
            **_decision(y_pos, p_pos, w, "referable"),
        }

    label = (
        f"grade >= {referable_from} ({class_names[referable_from]} or worse); called at P >= 0.5"
    )
    return _report(values, g, len(y), n_bootstrap, ci_level, seed, {"referable": label})

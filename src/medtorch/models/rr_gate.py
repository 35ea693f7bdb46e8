"""A second stage on RR features that splits one pair of classes again (N vs SVEB).

Why: in the inter-patient MIT-BIH protocol a deep network given RR features fits the
training patients' rhythms jointly with their beat shapes and does not carry the SVEB
decision to new patients (DS2 SVEB sensitivity 10-16 % with our ResNet). A small model on
the RR features alone, fitted on the training records' N and S beats, does better, as de
Chazal et al. 2004 found with linear discriminants. Which model and features: chosen by
leave-one-record-out cross-validation inside DS1 (``benchmarks/ecg/rr_gate_cv.py``).

So the network keeps what it is good at, the beat's shape: its probabilities of the other
classes (V, F, Q) are left as they are. The probability mass it gives the pair (N + S) is
split again by ``q``, the second stage's probability of S given the RR features:

    p'_N = (p_N + p_S) (1 - q),   p'_S = (p_N + p_S) q

Two second stages (``method``), both fitted with scikit-learn and then held as tensors:

- ``"logistic"``: LogisticRegression on standardised features;
- ``"trees"``: HistGradientBoostingClassifier (at most :data:`MAX_TREES` trees of at most
  :data:`MAX_LEAVES` leaves); its trees are copied into fixed-size tensors and walked in
  PyTorch, so the stage exports to ONNX like the rest of the model.

**Operating point** (``min_ppv``). Left unset, S is called where the stage's weighted fit
says P(S | pair) > 1/2. Set, the stage chooses its own threshold when it is fitted: it
cross-validates itself on the beats it is given, grouped by the unit of independence (the
record; leave-one-group-out up to :data:`MAX_CV_FOLDS` groups, else that many group
folds), and takes the lowest threshold whose pooled cross-validated positive predictivity
is at least ``min_ppv``, i.e. the most sensitive point that keeps the +P floor on patients
the stage did not see. The threshold (a logit offset) is a buffer like the rest, so
checkpoints, ``medtorch predict`` and the ONNX export all use it. If no threshold reaches
the floor, the one with the highest cross-validated +P is used; if the S beats sit in fewer
than 2 groups, there is nothing to cross-validate and the fit's own threshold is kept. In
both cases the summary (in ``metrics.json`` and the report) and the log say so.

The stage is inactive until fitted, so the network trains as usual; fitted, it is part of
the model's state dict, of every checkpoint written after fitting, and of the ONNX export.
The pipeline fits it on the training split, or on training and validation
(``model.params.after_training_on``: the validation records then only pick the network's epoch,
and their scores are in-sample for this stage); never on the test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.registry import register_stage_description

log = logging.getLogger(__name__)

MAX_TREES = 100
MAX_LEAVES = 31
MAX_NODES = 2 * MAX_LEAVES - 1
MAX_CV_FOLDS = 25
METHODS = ("logistic", "trees")


def min_ppv_threshold(
    score: np.ndarray, t: np.ndarray, min_ppv: float
) -> tuple[float, float, float, bool]:
    """The most sensitive threshold on ``score`` whose +P (for labels ``t``) is >= ``min_ppv``.

    Returns (threshold, Se, +P, met): S is called where score > threshold (halfway to the
    next lower score); ties in Se go to the higher threshold. If no threshold reaches
    ``min_ppv``, the most predictive one, with met False.
    """
    from sklearn.metrics import precision_recall_curve

    ppv, se, thr = precision_recall_curve(t, score)  # S called where score >= thr[i]
    ppv, se = ppv[:-1], se[:-1]
    ok = ppv >= min_ppv
    if ok.any():
        i = int(np.flatnonzero(ok & (se == se[ok].max()))[-1])
    else:
        i = int(ppv.argmax())
    lower = thr[i - 1] if i > 0 else thr[i] - 1.0  # the next lower score
    return float((thr[i] + lower) / 2), float(se[i]), float(ppv[i]), bool(ok.any())


class RRGate(nn.Module):
    """Split the pair ``classes`` again from RR features: the first ``features`` (an int),
    or the columns it lists.

    ``forward(logits (N, K), rr (N, > every column)) -> (N, K)`` log-probabilities: the
    logits unchanged while unfitted, else the log of the re-split probabilities (a softmax
    of them gives back those probabilities). ``weight``: the second class's weight in the
    loss (its beats are rare; larger -> more sensitive, less predictive). ``c``: inverse
    L2 strength of the logistic regression. ``min_ppv``: choose the threshold by grouped
    cross-validation at fit time (see the module's docstring); ``fit`` then needs groups.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    coef: torch.Tensor
    bias: torch.Tensor
    offset: torch.Tensor
    fitted: torch.Tensor
    depth: torch.Tensor
    t_feature: torch.Tensor
    t_threshold: torch.Tensor
    t_left: torch.Tensor
    t_right: torch.Tensor
    t_value: torch.Tensor
    keep: torch.Tensor
    one_a: torch.Tensor
    one_b: torch.Tensor
    offsets: torch.Tensor
    col_index: torch.Tensor

    def __init__(
        self, features: int | Sequence[int], n_classes: int, classes: tuple[int, int] = (0, 1),
        weight: float = 10.0, c: float = 1.0, method: str = "logistic",
        min_ppv: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        a, b = (int(v) for v in classes)
        if a == b or not (0 <= a < n_classes and 0 <= b < n_classes):
            raise ModelError(
                fmt(
                    f"two different class indices in [0, {n_classes})",
                    list(classes),
                    "model.params.rr_gate_classes",
                    "use e.g. [0, 1] for N and S",
                )
            )
        if not weight > 0 or not c > 0:
            raise ModelError(
                fmt(
                    "positive numbers",
                    [weight, c],
                    "model.params.rr_gate_weight / rr_gate_c",
                    "use e.g. 10.0 and 1.0",
                )
            )
        if method not in METHODS:
            raise ModelError(
                fmt(" or ".join(METHODS), method, "model.params.rr_gate_method", "pick one")
            )
        if min_ppv is not None and not (
            isinstance(min_ppv, (int, float)) and not isinstance(min_ppv, bool) and 0 < min_ppv < 1
        ):
            raise ModelError(
                fmt(
                    "null or a fraction in (0, 1)",
                    min_ppv,
                    "model.params.rr_gate_min_ppv",
                    "use e.g. 0.5 for a positive predictivity floor of 50 %",
                )
            )
        cols = list(range(features)) if isinstance(features, int) else [int(i) for i in features]
        if not cols or min(cols) < 0 or len(set(cols)) != len(cols):
            raise ModelError(
                fmt(
                    "a positive count or a list of distinct column indices >= 0",
                    features,
                    "model.params.rr_gate_features",
                    "use e.g. 7 or [0, 1, 2, 3, 4, 5, 6, 24, 25, 26]",
                )
            )
        n_features = len(cols)
        self.cols, self.n_features = cols, n_features
        self.classes, self.weight, self.c = (a, b), weight, c
        self.register_buffer("col_index", torch.tensor(cols), persistent=False)
        self.method, self.min_ppv = method, min_ppv
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("bias", torch.zeros((), dtype=torch.float64))
        # the operating point: S where score - offset > 0 (0 unless min_ppv chose one)
        self.register_buffer("offset", torch.zeros((), dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros(()))
        if method == "logistic":
            self.register_buffer("coef", torch.zeros(n_features))
        else:  # fixed-size tree tensors: a padded node is a leaf pointing to itself, value 0
            own = torch.arange(MAX_NODES).expand(MAX_TREES, MAX_NODES)
            self.register_buffer("depth", torch.zeros((), dtype=torch.long))
            self.register_buffer("t_feature", torch.zeros(MAX_TREES, MAX_NODES, dtype=torch.long))
            self.register_buffer(
                "t_threshold", torch.zeros(MAX_TREES, MAX_NODES, dtype=torch.float64)
            )
            self.register_buffer("t_left", own.clone())
            self.register_buffer("t_right", own.clone())
            self.register_buffer("t_value", torch.zeros(MAX_TREES, MAX_NODES, dtype=torch.float64))
            self.register_buffer("offsets", torch.arange(MAX_TREES) * MAX_NODES, persistent=False)
        keep = torch.ones(n_classes)
        keep[[a, b]] = 0.0
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("one_a", torch.eye(n_classes)[a], persistent=False)
        self.register_buffer("one_b", torch.eye(n_classes)[b], persistent=False)
        self.active = False  # Python values, so tracing for ONNX sees no tensor branch
        self.n_steps = self.n_trees = 0

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # a state dict from before operating points existed has no offset: it used 0
        state_dict.setdefault(prefix + "offset", torch.zeros((), dtype=torch.float64))
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._sync()

    def _sync(self) -> None:
        self.active = bool(self.fitted.item())
        self.n_steps = int(self.depth.item()) if self.method == "trees" else 0
        # fitted trees fill the leading rows (a state dict from before early stopping was
        # turned off may hold fewer than MAX_TREES);
        # walking only those is exact, as a padded tree adds 0
        used = (self.t_value != 0).any(1).nonzero() if self.method == "trees" else None
        self.n_trees = int(used.max()) + 1 if used is not None and len(used) else 0

    def fit(
        self, rr: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Fit on the beats of the pair (others ignored); returns a JSON-able summary.

        ``groups`` (N,): each beat's record, for the cross-validated operating point
        (needed only with ``min_ppv``)."""
        a, b = self.classes
        rr = np.asarray(rr, dtype=np.float64)
        if rr.ndim != 2 or rr.shape[1] <= max(self.cols):
            raise ModelError(
                fmt(
                    f"RR features (N, >= {max(self.cols) + 1})",
                    list(rr.shape),
                    "input 'rr'",
                    "lower model.params.rr_gate_features",
                )
            )
        pick = (y == a) | (y == b)
        z, t = rr[pick][:, self.cols], (y[pick] == b).astype(int)
        if t.sum() == 0 or t.sum() == len(t):
            raise ModelError(
                f"expected training beats of both classes {a} and {b} for the RR gate, got "
                f"{int(t.sum())} of class {b} among {len(t)}; check the split or drop "
                "model.params.rr_gate_features"
            )
        summary: dict[str, Any] = {
            "method": self.method, "classes": [a, b], "features": self.cols,
            "weight": self.weight, "n_beats": {str(a): int((t == 0).sum()), str(b): int(t.sum())},
        }  # fmt: skip
        if self.min_ppv is not None and (groups is None or len(groups) != len(y)):
            raise ModelError(
                f"expected one group id per beat for the RR gate's cross-validated operating "
                f"point (model.params.rr_gate_min_ppv={self.min_ppv}), got "
                f"{'none' if groups is None else len(groups)} for {len(y)} beats; pass the "
                "records as groups or set rr_gate_min_ppv to null"
            )
        from threadpoolctl import threadpool_limits

        # scikit-learn's OpenMP threads follow torch's (trainer.num_threads), so runs side by
        # side do not oversubscribe the cores (the fitted trees do not depend on the count)
        with torch.no_grad(), threadpool_limits(torch.get_num_threads(), user_api="openmp"):
            summary.update(self._fit_logistic(z, t) if self.method == "logistic"
                           else self._fit_trees(z, t))  # fmt: skip
            self.offset.zero_()
            if self.min_ppv is not None:
                assert groups is not None
                point = self._operating_point(z, t, np.asarray(groups)[pick])
                self.offset.fill_(point["offset"])
                summary["operating_point"] = point
            self.fitted.fill_(1.0)
        self._sync()
        return summary

    def estimator(self) -> Any:
        """The unfitted scikit-learn model of ``method`` (the fits below and the CV share it)."""
        weights = {0: 1.0, 1: self.weight}
        if self.method == "logistic":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.c, class_weight=weights, max_iter=5000)
        from sklearn.ensemble import HistGradientBoostingClassifier

        # No early stopping: sklearn's would hold out a random 10 % of the rows, so the
        # fitted trees (and DS2 S sensitivity, by up to 4.5 points) would depend on the order
        # the beats arrive in. Without it the fit is a function of the beats alone.
        return HistGradientBoostingClassifier(
            max_iter=MAX_TREES, max_leaf_nodes=MAX_LEAVES, early_stopping=False,
            class_weight=weights, random_state=0,
        )  # fmt: skip

    def _operating_point(self, z: np.ndarray, t: np.ndarray, groups: np.ndarray) -> dict:
        """The lowest threshold on the score whose grouped-CV pooled +P >= ``min_ppv``."""
        from sklearn.model_selection import GroupKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n_groups, n_pos = len(np.unique(groups)), len(np.unique(groups[t == 1]))
        if n_pos < 2:  # too few records to cross-validate: say so, keep the fit's own point
            log.warning(
                "RR gate: S beats in %d of %d groups (records), too few to cross-validate an "
                "operating point; using the weighted fit's own threshold (offset 0)",
                n_pos, n_groups,
            )  # fmt: skip
            return {"min_ppv": self.min_ppv, "met": False, "offset": 0.0, "cv": None,
                    "note": f"not cross-validated: S beats in {n_pos} of {n_groups} groups; "
                            "offset 0 (the weighted fit's own threshold) used"}  # fmt: skip
        est = self.estimator()
        if self.method == "logistic":
            est = make_pipeline(StandardScaler(), est)  # as _fit_logistic standardises
        folds = min(n_groups, MAX_CV_FOLDS)
        cv = cross_val_predict(est, z, t, groups=groups, cv=GroupKFold(folds),
                               method="decision_function")  # fmt: skip
        assert self.min_ppv is not None  # fit calls this only with a floor
        offset, i_se, i_ppv, met = min_ppv_threshold(cv, t, self.min_ppv)
        if not met:
            log.warning(
                "RR gate: no threshold reaches a cross-validated +P of %.3f (best %.3f); "
                "using the most predictive one", self.min_ppv, i_ppv,
            )  # fmt: skip
        return {
            "min_ppv": self.min_ppv, "met": met, "offset": round(offset, 6),
            "cv": f"{folds} group folds" + (" (one group each)" if folds == n_groups else ""),
            "note": None if met else "floor not reached: the most predictive threshold used",
            "cv_Se": round(i_se, 4), "cv_+P": round(i_ppv, 4),
            "cv_at_offset_0": {"Se": round(float((cv[t == 1] > 0).mean()), 4),
                               "+P": round(float(t[cv > 0].mean()), 4) if (cv > 0).any()
                               else None},
        }  # fmt: skip

    def _fit_logistic(self, z: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        mean, scale = z.mean(0), z.std(0)
        scale[scale < 1e-8] = 1.0
        lr = self.estimator()
        lr.fit((z - mean) / scale, t)
        self.mean.copy_(torch.as_tensor(mean))
        self.scale.copy_(torch.as_tensor(scale))
        self.coef.copy_(torch.as_tensor(lr.coef_[0]))
        self.bias.fill_(float(lr.intercept_[0]))
        return {"model": "sklearn LogisticRegression on standardised features", "C": self.c,
                "coef": [round(float(v), 5) for v in lr.coef_[0]],
                "intercept": round(float(lr.intercept_[0]), 5)}  # fmt: skip

    def _fit_trees(self, z: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        clf = self.estimator()
        clf.fit(z, t)
        # sklearn keeps its fitted trees in ``_predictors`` (one per iteration for a binary
        # task); tests/test_rr_gate.py checks the copy against clf.decision_function.
        # Start from empty slots, so a refit with fewer trees leaves none of the old ones.
        for buf in (self.t_feature, self.t_threshold, self.t_value):
            buf.zero_()
        self.t_left.copy_(torch.arange(MAX_NODES).expand_as(self.t_left))
        self.t_right.copy_(self.t_left)
        depth = 0
        for i, (tree,) in enumerate(clf._predictors):
            nodes = tree.nodes
            k, leaf = len(nodes), nodes["is_leaf"].astype(bool)
            own = np.arange(k)
            self.t_feature[i, :k] = torch.as_tensor(nodes["feature_idx"].astype(np.int64))
            self.t_threshold[i, :k] = torch.as_tensor(nodes["num_threshold"])
            self.t_left[i, :k] = torch.as_tensor(
                np.where(leaf, own, nodes["left"]).astype(np.int64)
            )
            self.t_right[i, :k] = torch.as_tensor(
                np.where(leaf, own, nodes["right"]).astype(np.int64)
            )
            self.t_value[i, :k] = torch.as_tensor(np.where(leaf, nodes["value"], 0.0))
            depth = max(depth, int(nodes["depth"].max()))
        self.depth.fill_(depth)
        self.bias.fill_(float(np.asarray(clf._baseline_prediction).ravel()[0]))
        return {"model": "sklearn HistGradientBoostingClassifier", "n_trees": int(clf.n_iter_),
                "max_leaves": MAX_LEAVES, "max_depth": depth}  # fmt: skip

    def _pick(self, rr: torch.Tensor) -> torch.Tensor:
        """The gate's columns of ``rr`` (N, F): a slice when they lead, else a gather."""
        if self.cols == list(range(self.n_features)):
            return rr[:, : self.n_features]
        return rr.index_select(1, self.col_index)

    def score(self, rr: torch.Tensor) -> torch.Tensor:
        """(N,) float64 logit of P(second class | pair) from the RR features, as fitted
        (the operating point's ``offset`` is not subtracted here but in ``forward``)."""
        if self.method == "logistic":
            z = (self._pick(rr).double() - self.mean.double()) / self.scale.double()
            return z @ self.coef.double() + self.bias
        x = self._pick(rr).double()  # (N, F)
        t = self.n_trees
        offsets = self.offsets[:t]
        root = torch.zeros_like(x[:, :1], dtype=torch.long)  # (N, 1), traced with a dynamic N
        node = root + torch.zeros_like(offsets)  # (N, trees): every tree at its root
        feature, threshold = self.t_feature[:t].reshape(-1), self.t_threshold[:t].reshape(-1)
        left, right = self.t_left[:t].reshape(-1), self.t_right[:t].reshape(-1)
        for _ in range(self.n_steps):  # leaves point to themselves, so extra steps are no-ops
            g = node + offsets  # (N, trees) flat node index
            xv = x.gather(1, feature[g])  # (N, trees) the feature each node tests
            node = torch.where(xv <= threshold[g], left[g], right[g])
        return self.t_value[:t].reshape(-1)[node + offsets].sum(1) + self.bias  # (N,)

    def forward(self, logits: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return logits
        lp = torch.log_softmax(logits.float(), dim=1)  # (N, K), in log space: no underflow
        s = (self.score(rr) - self.offset).float().unsqueeze(1)  # (N, 1) at the operating point
        a, b = self.classes
        pair = torch.logsumexp(lp[:, [a, b]], dim=1, keepdim=True)  # (N, 1) log(p_a + p_b)
        la = pair - F.softplus(s)  # log sigmoid(-s); softplus exports stably to ONNX
        lb = pair - F.softplus(-s)
        return lp * self.keep + la * self.one_a + lb * self.one_b  # (N, K) log-probabilities


def describe_summary(stage: dict[str, Any]) -> str:
    """The run report's sentence on a fitted gate's summary (as in metrics.json)."""
    counts = ", ".join(f"class {k}: {v}" for k, v in (stage.get("n_beats") or {}).items())
    on = str(stage.get("fitted_on", "train"))
    caveat = (
        " The validation scores above are in-sample for this stage: its fit saw those beats."
        if "valid" in on.split("+")
        else ""
    )
    point, threshold = stage.get("operating_point"), ""
    if isinstance(point, dict) and point.get("cv"):
        threshold = (
            " Operating point: the most sensitive threshold whose cross-validated +P "
            f"({point['cv']}, on the same beats) is at least {point.get('min_ppv')}: "
            f"offset {point.get('offset')}, CV Se {point.get('cv_Se')} / +P "
            f"{point.get('cv_+P')}"
        )
        threshold += "." if point.get("met") else f"; NOT met: {point.get('note')}."
    elif isinstance(point, dict):
        threshold = f" Operating point: {point.get('note')}."
    feats = (
        f"the first {stage['n_features']} RR features"  # metrics.json from before column lists
        if "n_features" in stage
        else "the features "
        + ", ".join(map(str, stage.get("feature_names") or stage.get("features") or []))
    )
    return (
        f"{stage.get('model') or stage.get('method', '')} between classes "
        f"{stage.get('classes')} on {feats}; weight of the second class {stage.get('weight')}; "
        f"fitted on {counts}.{threshold} The metrics above include it.{caveat}"
    )


for _method in ("logistic", "trees"):
    register_stage_description(_method, describe_summary)

"""Input normalisation, fitted on the training partition only and saved with the run.

kinds: ``none``; ``standard`` (per feature for (N, F), per channel over samples and time
for (N, C, T) / (N, C, H, W)); ``global`` (one mean/sd); ``per_sample`` (each sample by
its own mean/sd, nothing fitted). A zero sd is replaced by 1.

>>> import numpy as np
>>> norm = fit_normalizer("standard", np.array([[1.0, 5.0], [3.0, 5.0]], dtype="float32"))
>>> norm.transform(np.array([[2.0, 5.0]], dtype="float32")).tolist()
[[0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medtorch.errors import ConfigError

if TYPE_CHECKING:
    from medtorch.data.dataset import ArrayDataset

KINDS = ("none", "standard", "global", "per_sample")


@dataclass
class Normalizer:
    kind: str
    mean: np.ndarray | None = None  # broadcastable to one sample, e.g. (C, 1) for (C, T)
    sd: np.ndarray | None = None

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of ``x`` (N, ...)."""
        x = np.asarray(x, dtype=np.float32)
        if self.kind == "none":
            return x
        if self.kind == "per_sample":
            axes = tuple(range(1, x.ndim))
            mean = x.mean(axis=axes, keepdims=True)
            sd = x.std(axis=axes, keepdims=True)
            return ((x - mean) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
        assert self.mean is not None and self.sd is not None
        if self.kind == "standard" and (
            x.ndim != self.mean.ndim + 1 or x.shape[1] != self.mean.shape[0]
        ):
            raise ConfigError(
                f"expected inputs with {self.mean.shape[0]} features/channels, got shape {x.shape} "
                "in preprocess.normalize; use the normaliser fitted on this task's training data"
            )
        return ((x - self.mean) / self.sd).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mean": None if self.mean is None else self.mean.tolist(),
            "sd": None if self.sd is None else self.sd.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        def arr(v: Any) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float32)

        return cls(d["kind"], arr(d.get("mean")), arr(d.get("sd")))


def fit_normalizer(kind: str, x_train: np.ndarray) -> Normalizer:
    """Fit normaliser ``kind`` on ``x_train`` (the TRAINING rows only)."""
    if kind not in KINDS:
        raise ConfigError(
            f"expected one of {', '.join(KINDS)}, got {kind!r} in "
            "preprocess.normalize; pick one of those"
        )
    if kind in ("none", "per_sample"):
        return Normalizer(kind)
    x = np.asarray(x_train, dtype=np.float64)
    if kind == "global":
        axes: tuple[int, ...] = tuple(range(x.ndim))
    elif x.ndim == 2:
        axes = (0,)  # per feature
    else:
        axes = (0, *range(2, x.ndim))  # per channel, over samples and time/space
    mean = x.mean(axis=axes, keepdims=True)[0]
    sd = x.std(axis=axes, keepdims=True)[0]
    sd = np.where(sd > 0, sd, 1.0)
    return Normalizer(kind, mean.astype(np.float32), sd.astype(np.float32))


class NormalizerEncoder:
    """The default input encoder of a task: the ``preprocess.normalize`` normaliser on ``x``
    (other inputs pass through), saved as ``normalizer.json``."""

    filename = "normalizer.json"

    def __init__(self, norm: Normalizer) -> None:
        self.norm = norm

    @classmethod
    def fit(
        cls, ds: ArrayDataset, train_index: np.ndarray, settings: Mapping[str, Any]
    ) -> NormalizerEncoder:
        return cls(fit_normalizer(str(settings["normalize"]), ds.inputs["x"][train_index]))

    def transform(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**inputs, "x": self.norm.transform(inputs["x"])}

    def hints(self) -> dict[str, int]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return self.norm.to_dict()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormalizerEncoder:
        return cls(Normalizer.from_dict(d))

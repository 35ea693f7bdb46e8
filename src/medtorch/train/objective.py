"""What the model's logits mean: one class of K (``multiclass``) or any of L labels
(``multilabel``, e.g. the diagnoses of a patient's next visit).

An :class:`Objective` gives the trainer its labels as tensors, its loss, its probabilities
and its validation metrics, so the loop itself never branches on the kind of task.

- ``multiclass``: y (N,) class indices; softmax cross-entropy (with class weights);
  probabilities (N, K) summing to one.
- ``multilabel``: y (N, L) of 0/1; binary cross-entropy on each label; probabilities (N, L)
  from a sigmoid, each label on its own. Class weights and the balanced sampler are
  multiclass ideas and are refused.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from medtorch.config import TrainerConfig
from medtorch.errors import ConfigError, DataError, fmt
from medtorch.train import distributed
from medtorch.train.parts import to_tensor, valid_metrics

ObjectiveName = Literal["multiclass", "multilabel"]


class Objective:
    """Multiclass (softmax) or multilabel (sigmoid) labels, loss and probabilities."""

    def __init__(self, name: str, n_outputs: int, cfg: TrainerConfig) -> None:
        if name not in ("multiclass", "multilabel"):
            raise ConfigError(fmt("multiclass or multilabel", name, "Trainer(objective=...)",
                                  "pick one of the two"))  # fmt: skip
        self.name, self.n_outputs = name, n_outputs
        self.smoothing = float(cfg.label_smoothing)
        if name == "multilabel" and (cfg.class_weights != "none" or cfg.sampler != "shuffle"):
            raise ConfigError(
                fmt("class_weights none and sampler shuffle for a multilabel objective",
                    f"{cfg.class_weights} / {cfg.sampler}", "trainer.class_weights / trainer.sampler",
                    "remove them: each label has its own binary loss")
            )  # fmt: skip

    @property
    def multilabel(self) -> bool:
        return self.name == "multilabel"

    def check_labels(self, y: np.ndarray, where: str) -> None:
        """Multilabel y must be (N, L) of 0/1; multiclass y (N,) (checked by ArrayDataset)."""
        want = (2, self.n_outputs) if self.multilabel else (1, None)
        ok = y.ndim == want[0] and (want[1] is None or y.shape[1] == want[1])
        if ok and self.multilabel:
            ok = bool(np.isin(y, (0, 1)).all())
        if not ok:
            shape = f"(N, {self.n_outputs}) of 0/1" if self.multilabel else "(N,) class indices"
            raise DataError(fmt(f"labels of shape {shape} for a {self.name} objective",
                                tuple(y.shape), where, "give one label row per sample"))  # fmt: skip

    def labels(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        """Label tensor: int64 class indices, or float32 0/1 for multilabel."""
        t = to_tensor(y, device)
        return t.float() if self.multilabel else t

    def loss(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        y_global: torch.Tensor,
        weight: torch.Tensor | None,
        world: int,
    ) -> torch.Tensor:
        """The training loss of one (per-process share of a) global batch, against targets
        smoothed by ``trainer.label_smoothing`` (the validation loss is never smoothed)."""
        if not self.multilabel:
            return distributed.global_batch_loss(logits, y, y_global, weight, world, self.smoothing)
        if self.smoothing:
            y = y * (1.0 - self.smoothing) + self.smoothing / 2.0
        if world == 1:
            return F.binary_cross_entropy_with_logits(logits, y)
        total = float(y_global.numel())  # the global batch's mean over rows and labels
        return F.binary_cross_entropy_with_logits(logits, y, reduction="sum") * world / total

    def valid_loss(
        self, logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None
    ) -> float:
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, y).item()
        return F.cross_entropy(logits, y, weight=weight).item()

    def proba(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) float64 probabilities: softmax, or a sigmoid per label."""
        return (
            torch.sigmoid(logits.double()) if self.multilabel else torch.softmax(logits.double(), 1)
        )

    def metrics(self, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        """The validation metric columns (:mod:`medtorch.metrics` computes them)."""
        if self.multilabel:
            from medtorch.metrics.multilabel import multilabel_metrics

            return {f"valid_{k}": v for k, v in multilabel_metrics(y, proba).items()}
        return valid_metrics(y, proba)

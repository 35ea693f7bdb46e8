"""Model selection and early stopping: which epoch is the best, and when to stop.

:class:`Selection` resolves the monitored column and its direction once per run (falling
back to ``train_loss`` without a validation set), then :meth:`Selection.update` takes each
epoch's score and says whether it is a new best; ``stopped_early`` turns true when
``patience`` epochs pass without one. Its whole state is four numbers, saved in every
checkpoint.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from medtorch.config import TrainerConfig
from medtorch.errors import ConfigError, fmt
from medtorch.train.parts import MONITORS

log = logging.getLogger("medtorch")


def check_monitor(cfg: TrainerConfig) -> None:
    """Refuse an unknown monitor, or ``epoch`` minimised, before anything trains."""
    if cfg.monitor not in MONITORS:
        raise ConfigError(fmt(f"one of {list(MONITORS)}", cfg.monitor, "trainer.monitor",
                              "pick one of those names"))  # fmt: skip
    if cfg.monitor == "epoch" and cfg.monitor_mode == "min":
        raise ConfigError(
            fmt("monitor_mode max or auto with trainer.monitor=epoch", cfg.monitor_mode,
                "trainer.monitor_mode", "set it to auto (the last epoch is kept)")
        )  # fmt: skip


class Selection:
    """The best epoch so far and the early-stopping counter."""

    def __init__(self, cfg: TrainerConfig, has_valid: bool) -> None:
        self.monitor, mode = cfg.monitor, cfg.monitor_mode
        if not has_valid and self.monitor not in ("train_loss", "epoch"):
            log.info("no validation set: monitoring train_loss instead of %s", self.monitor)
            self.monitor, mode = "train_loss", "min"  # a loss is always minimised
        elif mode == "auto":
            mode = "min" if "loss" in self.monitor else "max"
        self.mode: str = mode
        self.patience, self.max_epochs = cfg.patience, cfg.max_epochs
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.since_best = 0
        self.stopped_early = False

    def update(self, epoch: int, score: float) -> bool:
        """Record one epoch's monitored score; True when it is a new best."""
        improved = not math.isnan(score) and (
            self.best_score is None
            or (score < self.best_score if self.mode == "min" else score > self.best_score)
        )
        if improved:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
        else:
            self.since_best += 1
        self.stopped_early = (
            self.patience is not None
            and self.since_best >= self.patience
            and epoch < self.max_epochs
        )
        return improved

    def state(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "epochs_without_improvement": self.since_best,
            "stopped_early": self.stopped_early,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.best_epoch, self.best_score = state["best_epoch"], state["best_score"]
        self.since_best = int(state["epochs_without_improvement"])
        self.stopped_early = bool(state["stopped_early"])

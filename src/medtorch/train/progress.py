"""What the loop shows while it runs: a live progress bar on a terminal and one log line
per epoch (``epoch 3/8 train_loss ... *``, the star marking a new best)."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("medtorch")


class EpochBar:
    """A tqdm bar over one epoch's steps, shown only on an interactive terminal (rank 0)."""

    def __init__(self, enabled: bool, steps: int, epoch: int, max_epochs: int) -> None:
        live = enabled and sys.stdout.isatty() and sys.stderr.isatty()
        self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{max_epochs}", leave=False,
                        disable=not live)  # fmt: skip

    def step(self, step: int, loss: Any, monitor: str, previous: float) -> None:
        if self.bar.disable:
            return
        self.bar.update()
        if step % 20 == 0:  # .item() syncs the device; only for the live display
            self.bar.set_postfix({"loss": f"{loss.item():.4f}", monitor: f"{previous:.4f}"})

    def close(self) -> None:
        self.bar.close()


def log_epoch(
    row: dict[str, Any], max_epochs: int, monitor: str, improved: bool, has_valid: bool
) -> None:
    """The one line per epoch."""
    valid_part = f" valid_loss {row['valid_loss']:.4f}" if has_valid else ""
    monitor_part = (
        f" {monitor} {row[monitor]:.4f}"
        if monitor not in ("valid_loss", "epoch", "train_loss")
        else ""
    )
    log.info(
        "epoch %d/%d train_loss %.4f%s%s lr %.2e %.1fs%s",
        row["epoch"], max_epochs, row["train_loss"], valid_part, monitor_part, row["lr"],
        row["epoch_time_s"], " *" if improved else "",
    )  # fmt: skip


def log_early_stop(epoch: int, monitor: str, patience: int | None, best: float | None,
                   best_epoch: int | None) -> None:  # fmt: skip
    log.info(
        "early stopping at epoch %d: no %s improvement for %d epochs (best %.4f at epoch %s)",
        epoch, monitor, patience, best if best is not None else math.nan, best_epoch,
    )  # fmt: skip

"""Training: the one loop (:class:`Trainer`) and its checkpoint files."""

from medtorch.train.checkpoint import load_checkpoint
from medtorch.train.trainer import HISTORY_COLUMNS, MONITORS, Trainer

__all__ = ["HISTORY_COLUMNS", "MONITORS", "Trainer", "load_checkpoint"]

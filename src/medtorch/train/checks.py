"""Checks the trainer makes before it trains: the splits are usable and the model's output
has one column per class (each a one-line error naming what to fix)."""

from __future__ import annotations

import numpy as np
import torch

from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, DataError, SplitError, fmt
from medtorch.train.objective import Objective


def check_splits(train: ArrayDataset, valid: ArrayDataset | None, class_names: list[str],
                 objective: Objective, monitor: str) -> None:  # fmt: skip
    """Non-empty splits with the trainer's classes, labels and inputs."""
    if len(train) == 0:
        raise SplitError("expected training rows, got an empty training set; "
                         "check the split ratios and the task's cohort filters")  # fmt: skip
    if valid is not None and len(valid) == 0:
        raise SplitError("expected validation rows, got an empty validation set; "
                         "give the valid split a non-zero ratio or pass valid=None")  # fmt: skip
    for name, ds in (("train", train), ("valid", valid)):
        if ds is None:
            continue
        if ds.n_classes != len(class_names):
            raise DataError(fmt(f"{len(class_names)} classes {class_names}", ds.class_names,
                                f"the {name} dataset", "pass the class names of the dataset"))  # fmt: skip
        objective.check_labels(ds.y, f"the {name} dataset's y")
    if valid is not None and list(valid.inputs) != list(train.inputs):
        raise DataError(fmt(f"inputs {list(train.inputs)} (as in train)", list(valid.inputs),
                            "the valid dataset", "give both splits the same inputs"))  # fmt: skip
    if monitor == "valid_auroc" and valid is not None and len(np.unique(valid.y)) < 2:
        raise ConfigError(fmt("a valid set with at least two classes to monitor valid_auroc",
                              valid.class_counts(), "trainer.monitor", "monitor valid_loss instead"))  # fmt: skip


def check_logits(logits: torch.Tensor, class_names: list[str]) -> None:
    if logits.shape[-1] != len(class_names):
        raise ConfigError(fmt(f"logits of shape (B, {len(class_names)})", tuple(logits.shape),
                              "the model output", "set the model's n_classes to the number of classes"))  # fmt: skip

"""Bag-of-codes baselines: logistic regression and an MLP on which codes a patient has.

``x`` holds code ids of any layout, visits (N, V, C) or events (N, E); the model sees only
the multi-hot presence of each vocabulary code (padding 0 ignored), so order, timing,
repetitions and values are all discarded. Extra inputs (``t``, ``v``) are accepted and
ignored so the same baseline runs on every EHR task. A deep model that beats these on a
task shows what the sequence adds; one that does not, that the codes alone carry it.
"""

from __future__ import annotations

import torch
from torch import nn

from medtorch.models.ehr_parts import check_codes, check_dropout, multi_hot
from medtorch.models.mlp import MLP, MLPConfig
from medtorch.models.registry import ModelExample, register_model


class BagOfCodes(nn.Module):
    """Multi-hot over the vocabulary -> a linear layer or an MLP."""

    def __init__(self, vocab_size: int, head: nn.Module) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.head = head

    def forward(self, x: torch.Tensor, *ignored: torch.Tensor) -> torch.Tensor:
        check_codes(x, self.vocab_size, x.ndim, "of any layout")
        return self.head(multi_hot(x, self.vocab_size))  # (N, n_classes)


_VISITS = ModelExample(shapes=((5, 4), (5,)), kinds=("codes", "times"), vocab_size=30)


@register_model("bag_logreg", example=_VISITS)
def bag_logreg(n_inputs: int, n_classes: int) -> BagOfCodes:
    """Logistic regression on bag-of-codes (multi-hot over the vocabulary; pad 0 ignored).

    ``n_inputs`` is the vocabulary size (with pad 0 and unknown 1). Takes visits (N, V, C)
    or events (N, E); times and values are ignored.
    """
    return BagOfCodes(n_inputs, nn.Linear(n_inputs, n_classes))


_EVENTS = ModelExample(
    shapes=((6,), (6,), (6,)),
    kinds=("codes", "times", "values"),
    vocab_size=30,
    params={"hidden": (32,)},
)


@register_model("bag_mlp", example=_EVENTS)
def bag_mlp(
    n_inputs: int,
    n_classes: int,
    hidden: tuple[int, ...] | list[int] = (128,),
    dropout: float = 0.2,
    activation: str = "relu",
) -> BagOfCodes:
    """MLP on bag-of-codes (multi-hot over the vocabulary; pad 0 ignored), one hidden layer.

    ``n_inputs`` is the vocabulary size. Takes visits (N, V, C) or events (N, E).
    """
    check_dropout(dropout)
    return BagOfCodes(
        n_inputs, MLP(MLPConfig(n_inputs, n_classes, tuple(hidden), dropout, activation))
    )

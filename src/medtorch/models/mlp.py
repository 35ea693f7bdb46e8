"""Feed-forward network (CSE6250 lab 1) for feature vectors, e.g. svmlight patient features.

Lab definition (``1_FeedforwardNet.ipynb``, ``FeedForwardNet``)::

    hidden1 = nn.Linear(n_input, n_hidden); hidden2 = nn.Linear(n_hidden, n_hidden)
    out = nn.Linear(n_hidden, n_output)      # relu after each hidden layer
    net = FeedForwardNet(n_input=9978, n_hidden=256, n_output=1)

Our default ``hidden=(256, 256)`` with ``dropout=0`` is exactly that network (with
``n_classes`` logits; a binary task uses 2 logits and softmax cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.registry import ModelExample, register_model

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class MLPConfig:
    n_features: int
    n_classes: int
    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.0
    activation: str = "relu"


class MLP(nn.Module):
    """Linear -> activation -> dropout per hidden layer, then a linear head."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        if cfg.activation not in _ACTIVATIONS:
            raise ModelError(
                fmt(
                    f"one of {sorted(_ACTIVATIONS)}",
                    cfg.activation,
                    "model.params.activation",
                    "pick a listed activation",
                )
            )
        if not 0.0 <= cfg.dropout < 1.0:
            raise ModelError(
                fmt("a dropout in [0, 1)", cfg.dropout, "model.params.dropout", "use e.g. 0.2")
            )
        self.cfg = cfg
        layers: list[nn.Module] = []
        width = cfg.n_features
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[cfg.activation]()]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, F) or (N, C, T) -> (N, C*T)
        return self.head(self.body(x))  # (N, n_classes)


@register_model("mlp", example=ModelExample(shapes=((20,),), params={"hidden": (32, 32)}))
def mlp(
    n_inputs: int,
    n_classes: int,
    hidden: tuple[int, ...] | list[int] = (256, 256),
    dropout: float = 0.0,
    activation: str = "relu",
    n_times: int | None = None,
) -> MLP:
    """Feed-forward net of the CSE6250 lab (two hidden layers of 256, ReLU) on (N, F) vectors.

    ``n_inputs`` is the number of features F. For signals (N, C, T) pass ``n_inputs=C`` and
    ``n_times=T``: the signal is flattened to C*T features.
    """
    n_features = n_inputs * (n_times or 1)
    return MLP(MLPConfig(n_features, n_classes, tuple(hidden), dropout, activation))

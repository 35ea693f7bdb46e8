"""Recurrent classifiers (CSE6250 lab 3) for signals (N, C, T).

Lab definition (``3_RNN.ipynb``, ``RecurNet``)::

    rnn = nn.GRU(input_size=1, hidden_size=32, num_layers=2, batch_first=True, dropout=0.5)
    fc = nn.Linear(in_features=32, out_features=5)
    # forward: x, _ = rnn(x); fc(x[:, -1, :])

``gru(1, 5)`` is that network; ``lstm`` swaps the cell. The lab fed (N, T, 1); we take the
project's (N, C, T) layout and transpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models import fast_gru
from medtorch.models.registry import ModelExample, register_model


@dataclass(frozen=True)
class RNNConfig:
    n_inputs: int
    n_classes: int
    cell: str = "gru"
    hidden_size: int = 32
    num_layers: int = 2
    dropout: float = 0.5
    bidirectional: bool = False
    fast_cpu_training: bool = True


class RecurrentNet(nn.Module):
    """GRU/LSTM over time, final hidden state of the last layer -> linear head."""

    def __init__(self, cfg: RNNConfig) -> None:
        super().__init__()
        if not 0.0 <= cfg.dropout < 1.0:
            raise ModelError(
                fmt("a dropout in [0, 1)", cfg.dropout, "model.params.dropout", "use e.g. 0.5")
            )
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cfg.cell]
        self.cfg = cfg
        self.rnn = rnn_cls(
            input_size=cfg.n_inputs,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            # torch applies dropout between layers only, and warns when there is one layer
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        n_dir = 2 if cfg.bidirectional else 1
        self.head = nn.Linear(cfg.hidden_size * n_dir, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (N, C, T) -> (N, T, C)
        if self.cfg.fast_cpu_training and fast_gru.usable(
            self.rnn, x
        ):  # same parameters and math, faster CPU training
            return self.head(fast_gru.gru_sequence(self.rnn, x)[:, -1])  # (N, n_classes)
        _, h = self.rnn(x)
        h_n = h[0] if isinstance(h, tuple) else h  # LSTM returns (h_n, c_n)
        # h_n: (layers * dirs, N, H). Its forward part equals the lab's x[:, -1, :]; for a
        # bidirectional net the backward direction's final state is its step at t=0, which
        # x[:, -1, :] would miss, so we read h_n rather than the output sequence.
        n_dir = 2 if self.cfg.bidirectional else 1
        last = h_n[-n_dir:].transpose(0, 1).flatten(1)  # (N, H * dirs)
        return self.head(last)  # (N, n_classes)


_EXAMPLE = ModelExample(shapes=((2, 24),), params={"hidden_size": 32, "dropout": 0.0})


@register_model("gru", example=_EXAMPLE)
def gru(
    n_inputs: int,
    n_classes: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    dropout: float = 0.5,
    bidirectional: bool = False,
    fast_cpu_training: bool = True,
) -> RecurrentNet:
    """GRU of the CSE6250 lab (2 layers of 32, dropout 0.5, last step -> linear) on (N, C, T).

    ``fast_cpu_training`` trains on the CPU through :mod:`medtorch.models.fast_gru` (same
    parameters and gradients, ~1.6-2x faster at small batches); False keeps nn.GRU's kernel.
    """
    return RecurrentNet(
        RNNConfig(
            n_inputs,
            n_classes,
            "gru",
            hidden_size,
            num_layers,
            dropout,
            bidirectional,
            fast_cpu_training,
        )
    )


@register_model("lstm", example=_EXAMPLE)
def lstm(
    n_inputs: int,
    n_classes: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    dropout: float = 0.5,
    bidirectional: bool = False,
) -> RecurrentNet:
    """LSTM variant of the lab RNN (2 layers of 32, dropout 0.5, last step -> linear)."""
    return RecurrentNet(
        RNNConfig(n_inputs, n_classes, "lstm", hidden_size, num_layers, dropout, bidirectional)
    )

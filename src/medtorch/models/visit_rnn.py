"""GRU / LSTM over hospital visits (Doctor AI, Choi et al. 2016; the lab series' RNN part 2).

Each visit (N, V, C) is an embedding bag of its codes (sum or mean, padding_idx 0), with
optional time features from ``t`` (log1p of the days to the prediction time and of the gap
to the previous visit) appended. The visit sequence runs through the RNN as a packed
variable-length sequence (lengths from the visit mask ``x[:, :, 0] != 0``), so padding
visits never enter the recurrence, and the last real visit's hidden state feeds the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from medtorch.models.ehr_parts import (
    N_TIME_FEATURES,
    VisitEmbedding,
    check_codes,
    check_dropout,
    check_times,
    row_lengths,
    time_features,
)
from medtorch.models.registry import ModelExample, register_model


@dataclass(frozen=True)
class VisitRNNConfig:
    vocab_size: int
    n_classes: int
    cell: str = "gru"
    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.2
    bag_mode: str = "sum"
    time_features: bool = True


class VisitRNN(nn.Module):
    """Embedding bag per visit (+ time features) -> packed GRU/LSTM -> last real visit -> head."""

    def __init__(self, cfg: VisitRNNConfig) -> None:
        super().__init__()
        check_dropout(cfg.dropout)
        self.cfg = cfg
        self.embed = VisitEmbedding(cfg.vocab_size, cfg.embed_dim, cfg.bag_mode)
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cfg.cell]
        self.rnn = rnn_cls(
            input_size=cfg.embed_dim + (N_TIME_FEATURES if cfg.time_features else 0),
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.n_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        check_codes(x, self.cfg.vocab_size, 3, "(N, V, C) visits")
        mask = x[:, :, 0] != 0  # (N, V) real visits, left-aligned
        e = self.drop(self.embed(x))  # (N, V, D)
        if self.cfg.time_features:
            t = check_times(t, mask.shape, "days to the prediction time per visit")
            e = torch.cat([e, time_features(t, mask)], dim=-1)  # (N, V, D + 2)
        packed = pack_padded_sequence(e, row_lengths(mask), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        h_n = h[0] if isinstance(h, tuple) else h  # LSTM returns (h_n, c_n)
        # with packing, h_n is each sequence's state at its own last real visit
        return self.head(self.drop(h_n[-1]))  # (N, n_classes)


_EXAMPLE = ModelExample(
    shapes=((5, 4), (5,)),
    kinds=("codes", "times"),
    vocab_size=30,
    params={"embed_dim": 16, "hidden_size": 16, "dropout": 0.0},
)


@register_model("visit_gru", example=_EXAMPLE)
def visit_gru(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 128,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.2,
    bag_mode: str = "sum",
    time_features: bool = True,
) -> VisitRNN:
    """GRU over visits (N, V, C): embedding bag per visit, time features, packed sequences.

    ``n_inputs`` is the vocabulary size (with pad 0 and unknown 1); ``bag_mode`` sum or mean
    of a visit's code embeddings; ``time_features`` appends log1p of the days to the
    prediction time and of the gap to the previous visit (from ``t``).
    """
    return VisitRNN(
        VisitRNNConfig(
            n_inputs, n_classes, "gru", embed_dim, hidden_size, num_layers, dropout, bag_mode,
            time_features,
        )
    )  # fmt: skip


@register_model("visit_lstm", example=_EXAMPLE)
def visit_lstm(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 128,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.2,
    bag_mode: str = "sum",
    time_features: bool = True,
) -> VisitRNN:
    """LSTM over visits (N, V, C): embedding bag per visit, time features, packed sequences.

    Same inputs and params as ``visit_gru``.
    """
    return VisitRNN(
        VisitRNNConfig(
            n_inputs, n_classes, "lstm", embed_dim, hidden_size, num_layers, dropout, bag_mode,
            time_features,
        )
    )  # fmt: skip

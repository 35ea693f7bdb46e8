"""Time-aware event-level models for the first hours of an admission (48 h tasks).

Inputs per the EHR arrays contract: ``x`` int64 (N, E) event codes (0 pad), in time order
and left-aligned; ``t`` float32 (N, E) hours from admission start (negative for events of
earlier admissions); ``v`` float32 (N, E) the value standardised per code (0 when none).
Each event is the sum of its code's embedding and its value times a direction learned per
code (a shared projection would mix, say, potassium's and glucose's meaning of +1 sd);
``event_gru`` appends log-scaled times and runs a packed GRU, ``event_transformer`` adds a
time encoding and runs :class:`~medtorch.models.transformer.SequenceEncoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from medtorch.errors import ModelError, fmt
from medtorch.models.ehr_parts import (
    N_TIME_FEATURES,
    TimeEncoding,
    check_codes,
    check_dropout,
    row_lengths,
    time_features,
)
from medtorch.models.registry import ModelExample, register_model
from medtorch.models.transformer import EncoderConfig, SequenceEncoder


class EventEmbedding(nn.Module):
    """(N, E) codes and values -> (N, E, dim): E[code] + value * U[code]; padding -> 0."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.code = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.value = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.code(x) + v[..., None] * self.value(x)  # (N, E, dim)


def _check_event_inputs(
    x: torch.Tensor, t: torch.Tensor, v: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    check_codes(x, vocab_size, 2, "(N, E) events")
    for name, arr in (("t", t), ("v", v)):
        if tuple(arr.shape) != tuple(x.shape):
            raise ModelError(
                fmt(
                    f"input {name} of the events' shape {tuple(x.shape)}",
                    tuple(arr.shape),
                    f"model input {name}",
                    "pass x, t (hours) and v (values) with one entry per event",
                )
            )
    return t.float(), v.float()


@dataclass(frozen=True)
class EventGRUConfig:
    vocab_size: int
    n_classes: int
    embed_dim: int = 64
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.2


class EventGRU(nn.Module):
    """Event embedding + log-scaled time features -> packed GRU -> last real event -> head."""

    def __init__(self, cfg: EventGRUConfig) -> None:
        super().__init__()
        check_dropout(cfg.dropout)
        self.cfg = cfg
        self.embed = EventEmbedding(cfg.vocab_size, cfg.embed_dim)
        self.rnn = nn.GRU(
            cfg.embed_dim + N_TIME_FEATURES,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.n_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t, v = _check_event_inputs(x, t, v, self.cfg.vocab_size)
        mask = x != 0  # (N, E)
        e = self.drop(self.embed(x, v))  # (N, E, D)
        e = torch.cat([e, time_features(t, mask)], dim=-1)  # (N, E, D + 2)
        packed = pack_padded_sequence(e, row_lengths(mask), batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # (layers, N, H) at each sequence's last real event
        return self.head(self.drop(h_n[-1]))  # (N, n_classes)


class EventTransformer(nn.Module):
    """Event embedding + time encoding (hours) -> CLS token, Transformer encoder -> head."""

    def __init__(self, vocab_size: int, cfg: EncoderConfig, time_encoding: str) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = EventEmbedding(vocab_size, cfg.embed_dim)
        self.time = TimeEncoding(cfg.embed_dim, time_encoding)
        self.body = SequenceEncoder(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t, v = _check_event_inputs(x, t, v, self.vocab_size)
        mask = x != 0  # (N, E)
        rows = self.embed(x, v) + self.time(t, mask)  # (N, E, D)
        return self.body(rows, mask)


_EXAMPLE_PARAMS = {"embed_dim": 16, "dropout": 0.0}
_SHAPES = ((8,), (8,), (8,))
_KINDS = ("codes", "times", "values")


@register_model(
    "event_gru",
    example=ModelExample(
        _SHAPES, kinds=_KINDS, vocab_size=30, params={**_EXAMPLE_PARAMS, "hidden_size": 16}
    ),
)
def event_gru(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 64,
    hidden_size: int = 64,
    num_layers: int = 1,
    dropout: float = 0.2,
) -> EventGRU:
    """GRU over events (x codes, t hours, v values; each (N, E)), packed, last real event.

    ``n_inputs`` is the vocabulary size; each event is its code's embedding plus its value
    along a per-code direction, with log1p of its hour and of the gap to the previous event.
    """
    return EventGRU(
        EventGRUConfig(n_inputs, n_classes, embed_dim, hidden_size, num_layers, dropout)
    )


@register_model(
    "event_transformer",
    example=ModelExample(
        _SHAPES,
        kinds=_KINDS,
        vocab_size=30,
        params={**_EXAMPLE_PARAMS, "n_heads": 2, "n_layers": 1},
    ),
)
def event_transformer(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    ff_mult: int = 2,
    dropout: float = 0.1,
    pooling: str = "cls",
    time_encoding: str = "sinusoidal",
) -> EventTransformer:
    """Transformer encoder over events (x codes, t hours, v values), time encoding, CLS token.

    ``n_inputs`` is the vocabulary size; ``time_encoding`` sinusoidal (on hours), learned or
    none; ``pooling`` cls or (masked) mean.
    """
    cfg = EncoderConfig(n_classes, embed_dim, n_heads, n_layers, ff_mult, dropout, pooling)
    return EventTransformer(n_inputs, cfg, time_encoding)

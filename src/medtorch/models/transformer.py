"""Transformer encoder over visits (the lab series' advanced topics; BEHRT-like, Li 2020).

Each visit (N, V, C) is an embedding bag of its codes; a time encoding of ``t`` (days to the
prediction time: sinusoidal, learned, or none) is added, which also gives the encoder the
visits' order; a CLS token is prepended; padding visits are masked out of attention
(``src_key_padding_mask``); the head reads the CLS output or the masked mean of the visit
outputs. :class:`SequenceEncoder` is shared with the event Transformer
(:mod:`medtorch.models.events`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.models.ehr_parts import (
    TimeEncoding,
    VisitEmbedding,
    check_choice,
    check_codes,
    check_dropout,
    check_times,
    encoder,
    masked_mean,
)
from medtorch.models.registry import ModelExample, register_model


@dataclass(frozen=True)
class EncoderConfig:
    n_classes: int
    embed_dim: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.1
    pooling: str = "cls"


class SequenceEncoder(nn.Module):
    """(N, R, D) row embeddings + (N, R) mask -> CLS token, encoder, pooling -> (N, n_classes).

    The CLS token is always present, so no sample's attention row is empty even with no
    real row; ``pooling=mean`` averages the CLS and real-row outputs.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        check_dropout(cfg.dropout)
        check_choice(cfg.pooling, ("cls", "mean"), "pooling")
        self.cfg = cfg
        self.cls = nn.Parameter(torch.randn(cfg.embed_dim) * 0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = encoder(cfg.embed_dim, cfg.n_heads, cfg.n_layers, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.embed_dim)  # pre-norm layers leave the output unnormalised
        self.head = nn.Linear(cfg.embed_dim, cfg.n_classes)

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n = len(rows)
        cls = self.cls.expand(n, 1, -1)
        seq = self.drop(torch.cat([cls, rows], dim=1))  # (N, 1 + R, D)
        keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        out = self.norm(self.encoder(seq, src_key_padding_mask=~keep))  # (N, 1 + R, D)
        pooled = out[:, 0] if self.cfg.pooling == "cls" else masked_mean(out, keep)
        return self.head(pooled)  # (N, n_classes)


class VisitTransformer(nn.Module):
    """Embedding bag per visit + time encoding -> :class:`SequenceEncoder`."""

    def __init__(
        self, vocab_size: int, cfg: EncoderConfig, bag_mode: str, time_encoding: str
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = VisitEmbedding(vocab_size, cfg.embed_dim, bag_mode)
        self.time = TimeEncoding(cfg.embed_dim, time_encoding)
        self.body = SequenceEncoder(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        check_codes(x, self.vocab_size, 3, "(N, V, C) visits")
        mask = x[:, :, 0] != 0  # (N, V)
        rows = self.embed(x)  # (N, V, D)
        if self.time.kind != "none":
            t = check_times(t, mask.shape, "days to the prediction time per visit")
            rows = rows + self.time(t, mask)
        return self.body(rows, mask)


_EXAMPLE = ModelExample(
    shapes=((5, 4), (5,)),
    kinds=("codes", "times"),
    vocab_size=30,
    params={"embed_dim": 16, "n_heads": 2, "n_layers": 1, "dropout": 0.0},
)


@register_model("visit_transformer", example=_EXAMPLE)
def visit_transformer(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 64,
    n_heads: int = 4,
    n_layers: int = 2,
    ff_mult: int = 2,
    dropout: float = 0.1,
    pooling: str = "cls",
    bag_mode: str = "sum",
    time_encoding: str = "sinusoidal",
) -> VisitTransformer:
    """Transformer encoder over visits (N, V, C): embedding bags, time encoding, CLS token.

    ``n_inputs`` is the vocabulary size; ``time_encoding`` sinusoidal (on days), learned
    (a linear map of log1p days and gaps) or none; ``pooling`` cls or (masked) mean.
    """
    cfg = EncoderConfig(n_classes, embed_dim, n_heads, n_layers, ff_mult, dropout, pooling)
    return VisitTransformer(n_inputs, cfg, bag_mode, time_encoding)

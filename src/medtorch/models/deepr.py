"""Deepr (Nguyen et al. 2017, IEEE JBHI): a 1-D CNN over the code sequence of a record.

Paper: "Deepr: A Convolutional Net for Medical Records". The visits are flattened into one
sentence of codes, oldest first, with a time-gap token between consecutive visits; the
gap buckets are the paper's 0-1, 1-3, 3-6, 6-12 and 12+ months (``gap_days`` edges 30, 90,
180, 365), ids ``vocab_size .. vocab_size + len(gap_days)`` after the codes. The sentence
is embedded, convolved (one layer, ReLU) and max-pooled over its real positions, then a
linear head gives the logits. Codes are gathered to the left before the convolution, so
padding codes and visits never sit between real tokens, and the pooling skips padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.ehr_parts import check_codes, check_dropout, check_times
from medtorch.models.registry import ModelExample, register_model


@dataclass(frozen=True)
class DeeprConfig:
    vocab_size: int
    n_classes: int
    embed_dim: int = 100
    n_filters: int = 100
    kernel_size: int = 3
    dropout: float = 0.2
    gap_days: tuple[float, ...] = (30.0, 90.0, 180.0, 365.0)


def code_sentence(
    x: torch.Tensor, t: torch.Tensor, vocab_size: int, gap_edges: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V, C) visits + (N, V) days -> (N, V * (C + 1)) tokens, left-aligned, and lengths.

    After each visit that has a next visit comes the gap token ``vocab_size + bucket`` of
    the days between the two (``t`` counts days to the prediction time, so the gap is
    t[i] - t[i + 1]); padding tokens (0) go to the end, keeping the real tokens' order.
    """
    n, v, _ = x.shape
    mask = x[:, :, 0] != 0  # (N, V)
    gap = (t[:, :-1] - t[:, 1:]).clamp(min=0.0)  # (N, V - 1) days from visit i to i + 1
    bucket = torch.bucketize(gap, gap_edges, right=True)  # 0 .. len(edges)
    gap_tok = torch.zeros(n, v, dtype=x.dtype, device=x.device)
    gap_tok[:, :-1] = (vocab_size + bucket) * mask[:, 1:]
    tokens = torch.cat([x, gap_tok[..., None]], dim=2).reshape(n, -1)  # (N, V * (C + 1))
    order = torch.sort((tokens == 0).to(torch.int8), dim=1, stable=True).indices
    tokens = tokens.gather(1, order)  # real tokens first, in their order
    return tokens, (tokens != 0).sum(1)


class Deepr(nn.Module):
    """Code sentence with gap tokens -> embedding -> Conv1d + ReLU -> masked max -> head."""

    def __init__(self, cfg: DeeprConfig) -> None:
        super().__init__()
        check_dropout(cfg.dropout)
        if cfg.kernel_size < 1 or cfg.kernel_size % 2 == 0:
            raise ModelError(
                fmt("an odd kernel_size", cfg.kernel_size, "model.params.kernel_size", "use e.g. 3")
            )
        edges = torch.tensor(sorted(cfg.gap_days), dtype=torch.float32)
        if len(edges) == 0 or bool((edges <= 0).any()):
            raise ModelError(
                fmt(
                    "increasing positive gap edges in days",
                    list(cfg.gap_days),
                    "model.params.gap_days",
                    "use e.g. [30, 90, 180, 365]",
                )
            )
        self.cfg = cfg
        self.gap_edges: torch.Tensor
        self.register_buffer("gap_edges", edges, persistent=False)
        n_tokens = cfg.vocab_size + len(edges) + 1  # codes, then one id per gap bucket
        self.embed = nn.Embedding(n_tokens, cfg.embed_dim, padding_idx=0)
        self.conv = nn.Conv1d(
            cfg.embed_dim, cfg.n_filters, cfg.kernel_size, padding=cfg.kernel_size // 2
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.n_filters, cfg.n_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        check_codes(x, self.cfg.vocab_size, 3, "(N, V, C) visits")
        t = check_times(t, x.shape[:2], "days to the prediction time per visit, for the gaps")
        tokens, lengths = code_sentence(x, t, self.cfg.vocab_size, self.gap_edges)
        real = tokens != 0  # (N, L)
        e = self.embed(tokens) * real[..., None]  # (N, L, D); padding embeds to 0
        h = torch.relu(self.conv(self.drop(e).transpose(1, 2)))  # (N, F, L)
        h = h.masked_fill(~real[:, None, :], float("-inf")).amax(dim=2)  # (N, F)
        h = torch.where(lengths[:, None] > 0, h, torch.zeros_like(h))  # an empty record
        return self.head(self.drop(h))  # (N, n_classes)


@register_model(
    "deepr",
    example=ModelExample(
        shapes=((5, 4), (5,)),
        kinds=("codes", "times"),
        vocab_size=30,
        params={"embed_dim": 16, "n_filters": 16, "dropout": 0.0},
    ),
)
def deepr(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 100,
    n_filters: int = 100,
    kernel_size: int = 3,
    dropout: float = 0.2,
    gap_days: tuple[float, ...] | list[float] = (30.0, 90.0, 180.0, 365.0),
) -> Deepr:
    """Deepr (Nguyen 2017): 1-D CNN + max pooling over the code sequence with time-gap tokens.

    ``n_inputs`` is the vocabulary size; ``gap_days`` the bucket edges of the gap tokens
    (the paper's 1, 3, 6, 12 months), placed between visits from ``t``.
    """
    return Deepr(
        DeeprConfig(n_inputs, n_classes, embed_dim, n_filters, kernel_size, dropout,
                    tuple(float(g) for g in gap_days))
    )  # fmt: skip

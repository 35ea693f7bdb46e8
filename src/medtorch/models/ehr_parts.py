"""Building blocks shared by the EHR models (codes, visits, events, times).

Inputs follow the EHR arrays contract: ``x`` int64 codes, 0 = padding, 1 = unknown, real
codes 2..vocab_size-1; visits (N, V, C) or events (N, E) left-aligned with padding at the
end; ``t`` float32 (N, V) days from each visit to the prediction time, or (N, E) hours from
admission start, 0 on padding. Every block here ignores padding, so padding a batch further
never changes a model's output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medtorch.errors import ModelError, fmt

TIME_ENCODINGS = ("sinusoidal", "learned", "none")
N_TIME_FEATURES = 2  # signed log1p(t), log1p(|gap to the previous row|)


def check_codes(x: torch.Tensor, vocab_size: int, ndim: int, what: str) -> None:
    """Reject inputs that are not integer codes below ``vocab_size`` with ``ndim`` axes.

    A float ``x`` usually means the codes went through feature normalisation; an id at or
    above ``vocab_size`` means the model was built for a different vocabulary.
    """
    if x.dtype not in (torch.int64, torch.int32):
        raise ModelError(
            fmt(
                f"int64 code indices {what}",
                str(x.dtype).replace("torch.", ""),
                "model input x",
                "pass the codes as integers (no feature normalisation on code inputs)",
            )
        )
    if x.ndim != ndim:
        raise ModelError(
            fmt(
                f"{ndim} axes {what}",
                tuple(x.shape),
                "model input x",
                "use a model made for this input (visit models take (N, V, C), event models (N, E))",
            )
        )
    compiling = getattr(torch.compiler, "is_compiling", lambda: False)()  # torch >= 2.3
    if torch.jit.is_tracing() or compiling or x.numel() == 0:
        return  # the range check reads values, which tracing and compiling cannot
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= vocab_size:
        raise ModelError(
            fmt(
                f"code ids in 0..{vocab_size - 1} (the model's vocabulary)",
                f"{lo}..{hi}",
                "model input x",
                "build the model with n_inputs = the vocabulary size of these codes",
            )
        )


def check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ModelError(fmt(f"one of {list(choices)}", value, f"model.params.{key}", "pick one"))


def check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ModelError(fmt("a dropout in [0, 1)", p, "model.params.dropout", "use e.g. 0.1"))


def check_times(t: torch.Tensor | None, shape: torch.Size, what: str) -> torch.Tensor:
    if t is None or tuple(t.shape) != tuple(shape):
        got = None if t is None else tuple(t.shape)
        raise ModelError(
            fmt(
                f"times t of shape {tuple(shape)} ({what})",
                got,
                "model input t",
                "pass t next to x, or build the model with time_encoding=none",
            )
        )
    return t.float()


def row_lengths(mask: torch.Tensor) -> torch.Tensor:
    """(N,) int64 CPU lengths of left-aligned rows, at least 1 (``pack_padded_sequence``
    rejects 0; a sample without any row then reads one all-padding row)."""
    return mask.sum(1).clamp(min=1).cpu()


def multi_hot(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(N, vocab_size) float 0/1 presence of each code anywhere in ``x`` (N, ...); pad 0 off."""
    flat = x.reshape(len(x), -1)
    bag = torch.zeros(len(x), vocab_size, device=x.device)
    bag.scatter_(1, flat, 1.0)
    bag[:, 0] = 0.0
    return bag  # (N, vocab_size)


def time_features(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, R, 2) log-scaled times: signed log1p(t) and log1p(|t_r - t_{r-1}|) (0 for the
    first row), zero on padding rows. Log scale: gaps range from hours to decades."""
    signed = torch.sign(t) * torch.log1p(t.abs())
    gap = torch.zeros_like(t)
    gap[:, 1:] = (t[:, 1:] - t[:, :-1]).abs() * mask[:, :-1]
    feats = torch.stack([signed, torch.log1p(gap)], dim=-1)  # (N, R, 2)
    return feats * mask[..., None]


class TimeEncoding(nn.Module):
    """(N, R) times -> (N, R, dim) encodings to add to row embeddings.

    ``sinusoidal``: sin/cos of t at ``dim / 2`` geometric frequencies (periods 2*pi to
    2*pi*max_period, in t's unit: days for visits, hours for events), as the Transformer's
    positions but on real time so an irregular gap reads as one, then a learned linear map,
    which picks the frequencies that matter (the raw sin/cos added to the code embeddings
    swamped them on the planted-order check: test AUROC 0.91 against 0.97-0.99 projected);
    ``learned``: a linear map of :func:`time_features`; ``none``: zeros. Padding rows -> 0.
    """

    def __init__(self, dim: int, kind: str = "sinusoidal", max_period: float = 10000.0) -> None:
        super().__init__()
        check_choice(kind, TIME_ENCODINGS, "time_encoding")
        self.kind, self.dim = kind, dim
        half = max(dim // 2, 1)
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.freqs: torch.Tensor
        self.register_buffer("freqs", freqs, persistent=False)
        n_features = {"sinusoidal": 2 * half, "learned": N_TIME_FEATURES}.get(kind)
        self.proj = nn.Linear(n_features, dim) if n_features else None

    def forward(self, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return torch.zeros(*t.shape, self.dim, device=t.device)
        if self.kind == "sinusoidal":
            angles = t[..., None] * self.freqs  # (N, R, dim // 2)
            feats = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        else:
            feats = time_features(t, mask)  # (N, R, 2)
        return self.proj(feats) * mask[..., None]  # (N, R, dim)


class VisitEmbedding(nn.Module):
    """(N, V, C) codes -> (N, V, dim): each visit the sum or mean of its codes' embeddings
    (``nn.EmbeddingBag`` with padding_idx 0, so padding codes add nothing and a padding
    visit embeds to 0)."""

    def __init__(self, vocab_size: int, dim: int, mode: str = "sum") -> None:
        super().__init__()
        check_choice(mode, ("sum", "mean"), "bag_mode")
        self.bag = nn.EmbeddingBag(vocab_size, dim, mode=mode, padding_idx=0)

    @property
    def weight(self) -> torch.Tensor:
        return self.bag.weight  # (vocab_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, v, c = x.shape
        return self.bag(x.reshape(n * v, c)).reshape(n, v, -1)  # (N, V, dim)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, R, D) -> (N, D) mean over real rows (mask (N, R) True); 0 for no real row."""
    w = mask[..., None].to(h.dtype)
    return (h * w).sum(1) / w.sum(1).clamp(min=1.0)


def encoder(dim: int, heads: int, layers: int, ff_mult: int, dropout: float) -> nn.Module:
    """A pre-norm ``nn.TransformerEncoder`` (batch first, GELU)."""
    if dim % heads:
        raise ModelError(
            fmt(
                f"embed_dim divisible by n_heads={heads}",
                dim,
                "model.params.embed_dim",
                "pick a multiple of n_heads",
            )
        )
    layer = nn.TransformerEncoderLayer(
        dim, heads, ff_mult * dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    # the nested-tensor fast path is off: it is an inference-only shortcut whose outputs
    # differ from the training path's in the last bits, and it warns with pre-norm layers
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

"""RETAIN (Choi et al. 2016, NeurIPS): an interpretable predictor over visits.

Paper: "RETAIN: An Interpretable Predictive Model for Healthcare using Reverse Time
Attention Mechanism". With v_i = W_emb x_i the (linear) embedding of visit i::

    g_i, ..., g_1 = RNN_alpha(v_i, ..., v_1)      # both RNNs read in reverse time
    h_i, ..., h_1 = RNN_beta(v_i, ..., v_1)
    alpha = softmax(w_alpha . g)                    # visit-level weights, over real visits
    beta_j = tanh(W_beta h_j + b_beta)              # variable-level weights (per embedding dim)
    c = sum_j alpha_j beta_j * v_j ;  logits = W c + b

so the logit is a sum over every code k of every visit j of
omega(y, x_{j,k}) = alpha_j W (beta_j * W_emb[:, k]) x_{j,k}, which
:meth:`RETAIN.contributions` returns. Here ``x`` is (N, V, C) code ids, visits oldest first
and left-aligned, so the reversal is per sample over its real visits; ``t`` adds time
features (log1p of days) to the RNNs' inputs as the paper's section 3 suggests, never to
``c``, so the contributions stay exact. The alpha layer has no bias: the softmax is
invariant to a shift, so a bias would learn nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from medtorch.errors import ModelError, fmt
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
class RetainConfig:
    vocab_size: int
    n_classes: int
    embed_dim: int = 128
    alpha_hidden: int = 128
    beta_hidden: int = 128
    dropout: float = 0.2
    bag_mode: str = "sum"
    time_features: bool = True


def reverse_rows(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, R, ...) with each sample's first ``lengths[n]`` rows in reverse order (the rest,
    padding, left in place). Its own inverse."""
    n, r = h.shape[:2]
    j = torch.arange(r, device=h.device).expand(n, r)
    lens = lengths.to(h.device)[:, None]
    idx = torch.where(j < lens, lens - 1 - j, j)  # (N, R)
    return h.gather(1, idx.reshape(n, r, *([1] * (h.ndim - 2))).expand_as(h))


class RETAIN(nn.Module):
    """Two reverse-time GRUs -> visit (alpha) and variable (beta) attention -> linear head."""

    def __init__(self, cfg: RetainConfig) -> None:
        super().__init__()
        check_dropout(cfg.dropout)
        self.cfg = cfg
        self.embed = VisitEmbedding(cfg.vocab_size, cfg.embed_dim, cfg.bag_mode)
        rnn_in = cfg.embed_dim + (N_TIME_FEATURES if cfg.time_features else 0)
        self.rnn_alpha = nn.GRU(rnn_in, cfg.alpha_hidden, batch_first=True)
        self.rnn_beta = nn.GRU(rnn_in, cfg.beta_hidden, batch_first=True)
        self.w_alpha = nn.Linear(cfg.alpha_hidden, 1, bias=False)
        self.w_beta = nn.Linear(cfg.beta_hidden, cfg.embed_dim)
        self.drop_emb = nn.Dropout(cfg.dropout)
        self.drop_ctx = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.embed_dim, cfg.n_classes)

    def _reverse_rnn(self, rnn: nn.GRU, inp: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rev = reverse_rows(inp, lengths)  # newest real visit first
        packed = pack_padded_sequence(rev, lengths, batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=inp.shape[1])
        return reverse_rows(out, lengths)  # (N, V, H), back in visit order

    def attend(
        self, x: torch.Tensor, t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Visit embeddings v (N, V, D), alpha (N, V) (0 on padding visits) and beta (N, V, D)."""
        check_codes(x, self.cfg.vocab_size, 3, "(N, V, C) visits")
        lengths = row_lengths(x[:, :, 0] != 0)  # (N,) CPU, >= 1
        mask = torch.arange(x.shape[1]) < lengths[:, None]  # at least one row per sample
        mask = mask.to(x.device)
        v = self.drop_emb(self.embed(x))  # (N, V, D)
        inp = v
        if self.cfg.time_features:
            t = check_times(t, mask.shape, "days to the prediction time per visit")
            inp = torch.cat([v, time_features(t, mask)], dim=-1)  # (N, V, D + 2)
        g = self._reverse_rnn(self.rnn_alpha, inp, lengths)  # (N, V, Ha)
        h = self._reverse_rnn(self.rnn_beta, inp, lengths)  # (N, V, Hb)
        e = self.w_alpha(g).squeeze(-1).masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(e, dim=1)  # (N, V), softmax over real visits only
        beta = torch.tanh(self.w_beta(h))  # (N, V, D)
        return v, alpha, beta

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        v, alpha, beta = self.attend(x, t)
        context = (alpha[..., None] * beta * v).sum(1)  # (N, D)
        return self.head(self.drop_ctx(context))  # (N, n_classes)

    def score_weights(self, target: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(D,) weights and () bias of the score that :meth:`contributions` decomposes.

        ``target=None``: the positive-class log-odds logit[1] - logit[0] for two classes (a
        softmax is invariant to a shift, so logit[1] alone is not identified), the logit for
        one; ``target=k``: logit[k] (a label of a multi-label model, or a class).
        """
        w, b = self.head.weight, self.head.bias
        if target is None:
            if self.cfg.n_classes == 2:
                return w[1] - w[0], b[1] - b[0]
            if self.cfg.n_classes == 1:
                return w[0], b[0]
            raise ModelError(
                fmt(
                    "a target class index for a model with more than two outputs",
                    target,
                    "RETAIN.contributions",
                    f"pass target in 0..{self.cfg.n_classes - 1}",
                )
            )
        if not 0 <= target < self.cfg.n_classes:
            raise ModelError(
                fmt(
                    f"a target in 0..{self.cfg.n_classes - 1}",
                    target,
                    "RETAIN.contributions",
                    "pass a class or label index",
                )
            )
        return w[target], b[target]

    def contributions(
        self, x: torch.Tensor, t: torch.Tensor | None = None, target: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha (N, V) and each code's contribution (N, V, C) to the score of ``target``.

        omega(y, x_{j,k}) = alpha_j w . (beta_j * W_emb[k]) (divided by the visit's code count
        for ``bag_mode=mean``), 0 on padding. Computed in eval mode (no dropout), so that
        ``contributions.sum((1, 2)) + bias`` equals the score, with ``w, bias =
        score_weights(target)``: the positive-class log-odds for a binary model.
        """
        was_training = self.training
        self.eval()
        try:
            _, alpha, beta = self.attend(x, t)
        finally:
            self.train(was_training)
        w, _ = self.score_weights(target)
        real = (x != 0).to(beta.dtype)  # (N, V, C)
        emb = self.embed.weight[x] * real[..., None]  # (N, V, C, D)
        if self.cfg.bag_mode == "mean":
            emb = emb / real.sum(-1).clamp(min=1.0)[..., None, None]
        per_code = (emb * beta[:, :, None, :]) @ w  # (N, V, C)
        return alpha, alpha[..., None] * per_code

    def explain(
        self, x: torch.Tensor, t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The visit weights and per-code contributions (:meth:`contributions`), as the
        pipeline's explanations read them (:class:`~medtorch.models.registry.Explains`).

        With more than two outputs (several classes, or the labels of a multi-label task
        such as next-visit diagnosis) each sample is explained for its highest-scored
        output."""
        if self.cfg.n_classes <= 2:
            return self.contributions(x, t)
        was_training = self.training
        self.eval()
        try:
            targets = self(x, t).argmax(1).tolist()
        finally:
            self.train(was_training)
        parts = [self.contributions(x[i : i + 1], None if t is None else t[i : i + 1], k)
                 for i, k in enumerate(targets)]  # fmt: skip
        return torch.cat([a for a, _ in parts]), torch.cat([c for _, c in parts])


@register_model(
    "retain",
    example=ModelExample(
        shapes=((5, 4), (5,)),
        kinds=("codes", "times"),
        vocab_size=30,
        params={"embed_dim": 16, "alpha_hidden": 16, "beta_hidden": 16, "dropout": 0.0},
    ),
)
def retain(
    n_inputs: int,
    n_classes: int,
    embed_dim: int = 128,
    alpha_hidden: int = 128,
    beta_hidden: int = 128,
    dropout: float = 0.2,
    bag_mode: str = "sum",
    time_features: bool = True,
) -> RETAIN:
    """RETAIN (Choi 2016) over visits (N, V, C): reverse-time visit and code attention.

    ``n_inputs`` is the vocabulary size (with pad 0 and unknown 1). ``contributions(x, t)``
    gives alpha per visit and each code's additive contribution to the positive log-odds.
    """
    return RETAIN(
        RetainConfig(
            n_inputs, n_classes, embed_dim, alpha_hidden, beta_hidden, dropout, bag_mode,
            time_features,
        )
    )  # fmt: skip

"""A CPU training path for ``nn.GRU`` with the same parameters and the same math.

At the lab's batch of 10, ``nn.GRU`` training on the CPU is bound by per-op overhead: every
one of 178 time steps x 2 layers runs ~10 small ops forward and as many autograd nodes
backward. Here the input projections of all steps are one matrix product, the recurrence runs
in a TorchScript loop, and backpropagation through time is written out by hand (one loop, no
autograd graph per step), which trains ~1.6-2x faster. Gradients equal ``nn.GRU``'s to
float64 round-off (``tests/test_models.py``). Used by :class:`medtorch.models.rnn.RecurrentNet`
only when training a unidirectional GRU on the CPU; inference and export use ``nn.GRU``.
Gate order and equations follow ``nn.GRU``: r, z, n; h' = (1 - z) * n + z * h.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile, whose
    warnings.simplefilter("ignore", FutureWarning)  # CPU compile of this loop is slower here

    @torch.jit.script
    def _forward(
        xp: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        t_len, n, h3 = xp.shape[0], xp.shape[1], xp.shape[2]
        hid = h3 // 3
        h = torch.zeros(n, hid, dtype=xp.dtype, device=xp.device)
        hs = torch.empty(t_len + 1, n, hid, dtype=xp.dtype, device=xp.device)
        hs[0] = h
        rs = torch.empty(t_len, n, hid, dtype=xp.dtype, device=xp.device)
        zs = torch.empty_like(rs)
        ns = torch.empty_like(rs)
        ghns = torch.empty_like(rs)
        wt = w_hh.t()
        for t in range(t_len):
            gh = torch.addmm(b_hh, h, wt)  # (N, 3H)
            rz = torch.sigmoid(xp[t, :, : 2 * hid] + gh[:, : 2 * hid])
            r = rz[:, :hid]
            z = rz[:, hid:]
            ghn = gh[:, 2 * hid :]
            nt = torch.tanh(torch.addcmul(xp[t, :, 2 * hid :], r, ghn))
            h = torch.lerp(nt, h, z)  # (1 - z) * n + z * h
            hs[t + 1] = h
            rs[t] = r
            zs[t] = z
            ns[t] = nt
            ghns[t] = ghn
        return hs, rs, zs, ns, ghns

    @torch.jit.script
    def _backward(
        gout: torch.Tensor,
        w_hh: torch.Tensor,
        hs: torch.Tensor,
        rs: torch.Tensor,
        zs: torch.Tensor,
        ns: torch.Tensor,
        ghns: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t_len, n, hid = rs.shape[0], rs.shape[1], rs.shape[2]
        dx = torch.empty(t_len, n, 3 * hid, dtype=gout.dtype, device=gout.device)
        dghn = torch.empty(t_len, n, hid, dtype=gout.dtype, device=gout.device)
        dh = torch.zeros(n, hid, dtype=gout.dtype, device=gout.device)
        for i in range(t_len):
            t = t_len - 1 - i
            dh = dh + gout[t]
            z = zs[t]
            nt = ns[t]
            r = rs[t]
            dn_pre = dh * (1 - z) * (1 - nt * nt)
            dz_pre = dh * (hs[t] - nt) * z * (1 - z)
            dr_pre = dn_pre * ghns[t] * r * (1 - r)
            dx[t, :, :hid] = dr_pre
            dx[t, :, hid : 2 * hid] = dz_pre
            dx[t, :, 2 * hid :] = dn_pre
            dg = dn_pre * r
            dghn[t] = dg
            dh = torch.addmm(dh * z, torch.cat([dr_pre, dz_pre, dg], 1), w_hh)
        dgh = torch.cat([dx[:, :, : 2 * hid], dghn], 2)  # (T, N, 3H): gradient of h @ W_hh^T + b_hh
        dw = dgh.reshape(t_len * n, 3 * hid).t() @ hs[:-1].reshape(t_len * n, hid)
        return dx, dw, dgh.sum((0, 1))


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, xp: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        hs, rs, zs, ns, ghns = _forward(xp, w_hh, b_hh)
        ctx.save_for_backward(w_hh, hs, rs, zs, ns, ghns)
        return hs[1:]  # (T, N, H)

    @staticmethod
    def backward(ctx: Any, gout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _backward(gout.contiguous(), *ctx.saved_tensors)


def usable(rnn: nn.Module, x: torch.Tensor) -> bool:
    """Whether the fast path applies: training a unidirectional, biased GRU on the CPU."""
    return (
        isinstance(rnn, nn.GRU)
        and not rnn.bidirectional
        and rnn.bias
        and x.device.type == "cpu"
        and torch.is_grad_enabled()
        and rnn.training
    )


def gru_sequence(rnn: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """Output sequence (N, T, H) of ``rnn`` (batch_first, zero initial state) on x (N, T, C)."""
    out = x.transpose(0, 1)  # (T, N, C)
    for layer in range(rnn.num_layers):
        xp = F.linear(out, getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"bias_ih_l{layer}"))
        w_hh, b_hh = getattr(rnn, f"weight_hh_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        out = _GRULayer.apply(xp.contiguous(), w_hh, b_hh)  # (T, N, H)
        if layer < rnn.num_layers - 1 and rnn.dropout > 0:
            out = F.dropout(out, rnn.dropout, True)  # as nn.GRU: between layers, training only
    return out.transpose(0, 1)  # (N, T, H)

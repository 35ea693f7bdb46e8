"""Hannun et al. 2019's network as they used it: one rhythm label per output segment of a
whole single-lead strip, and a pooling head that turns the segment labels into a strip label.

The trunk is :class:`medtorch.models.hannun.HannunResNet1d`'s (33 convolutions: a stem and 16
pre-activation residual blocks of two, kernel 16, 32 filters doubling every 4 blocks,
subsampling by 2 every other block, dropout 0.2 between a block's convolutions; checked
against the 2019 supplement). Its last feature map has one column per ``2 ** (n_blocks //
2)`` input samples (256 at the paper's size: 0.85 s at 300 Hz, Hannun's ~1 s output rate);
the linear head is applied to every column, giving per-segment logits (:meth:`segments`),
and the strip's logits are their mean over the segments the strip covers (the pooling
head): strips are zero-padded to one length in a batch and ``length`` (valid samples per
strip) masks the padding out.

With ``n_rr`` > 0 (set from a task's ``rr`` input, e.g. ``cinc2017_rhythm`` with
``rr_features: true``), a rhythm head reads the strip's RR-interval features (batch-normed)
beside the trunk's features averaged over the strip and adds its logits to the pooled
ones (and to every segment's, so the strip's logits stay the mean of its segments'): the
RR series carries what the leading challenge entries used to tell other rhythms and AF
from normal rhythm.

Two more options make the CPU-sized variant and the training crop:

- ``input_stride``: the input is resampled to ``1 / input_stride`` of its rate first (an
  average over each ``input_stride`` samples, i.e. a box low-pass then decimation);
- ``train_crop``: in training mode, each strip is a random crop of this many input samples
  from its valid part (strips shorter than that are kept whole, padded); in eval mode the
  whole strip is read. Crops change every batch, so an epoch sees new crops of every strip.
"""

from __future__ import annotations

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.hannun import HannunConfig, HannunResNet1d
from medtorch.models.registry import ModelExample, register_model


class HannunSegments(nn.Module):
    """``forward(x (N, C, T), length (N, 1)) -> (N, K)`` strip logits; ``segments`` gives the
    per-segment logits ``(N, K, S)`` and the mask of segments inside each strip ``(N, S)``."""

    def __init__(
        self, cfg: HannunConfig, input_stride: int = 1, train_crop: int = 0, n_rr: int = 0,
        rr_hidden: int = 32,
    ) -> None:  # fmt: skip
        super().__init__()
        self.net = HannunResNet1d(cfg)
        self.n_rr = int(n_rr)
        self.rr_norm: nn.Module | None = None
        self.rr_head: nn.Module | None = None
        if self.n_rr:
            width = cfg.filters(cfg.n_blocks - 1)
            self.rr_norm = nn.BatchNorm1d(self.n_rr)
            self.rr_head = nn.Sequential(nn.Linear(width + self.n_rr, rr_hidden), nn.ReLU(),
                                         nn.Dropout(cfg.dropout), nn.Linear(rr_hidden, cfg.n_classes))  # fmt: skip
        self.input_stride = int(input_stride)
        self.train_crop = int(train_crop)
        self.segment_samples = self.input_stride * 2 ** sum(
            cfg.stride(i) == 2 for i in range(cfg.n_blocks)
        )  # input samples per output segment
        self.receptive_field = self.input_stride * _receptive_field(cfg)

    def _prepare(self, x: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = x.shape[-1]
        n = length.reshape(-1).round().clamp(1, t).long()  # (N,) valid samples
        if self.input_stride > 1:
            s = self.input_stride
            pad = (-t) % s
            x = nn.functional.pad(x, (0, pad)).reshape(*x.shape[:2], -1, s).mean(-1)
            n = (n + s - 1) // s
        crop = self.train_crop // max(self.input_stride, 1)
        if self.training and crop and x.shape[-1] > crop:
            room = (n - crop).clamp_min(0)  # (N,) latest start inside the valid part
            start = (torch.rand(len(n), device=x.device) * (room + 1)).long().clamp_max(room)
            idx = start[:, None] + torch.arange(crop, device=x.device)  # (N, crop)
            x = torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))
            n = n.clamp_max(crop)
        return x, n

    def segments(
        self, x: torch.Tensor, length: torch.Tensor, rr: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-segment logits ``(N, K, S)`` and the (N, S) mask of segments in the strip."""
        x, n = self._prepare(x, length)
        net = self.net
        h = net.post(net.blocks(net.stem(x)))  # (N, F, S)
        logits = net.head(h.transpose(1, 2)).transpose(1, 2)  # (N, K, S)
        per = x.shape[-1] / h.shape[-1]  # samples (at the network's rate) per segment
        n_seg = torch.ceil(n.double() / per).long().clamp(1, h.shape[-1])  # (N,)
        mask = torch.arange(h.shape[-1], device=x.device)[None, :] < n_seg[:, None]
        if self.rr_head is not None and self.rr_norm is not None:
            if rr is None:
                raise ModelError(fmt("the strip's RR features (input rr)", None, "forward",
                                     "use a task with rr_features: true"))  # fmt: skip
            m = mask.to(h.dtype)[:, None, :]
            pooled = (h * m).sum(-1) / m.sum(-1)  # (N, F): the trunk's features over the strip
            bias = self.rr_head(torch.cat([pooled, self.rr_norm(rr.to(h.dtype))], 1))
            logits = logits + bias[:, :, None]
        return logits, mask

    def forward(
        self, x: torch.Tensor, length: torch.Tensor, rr: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits, mask = self.segments(x, length, rr)
        m = mask.to(logits.dtype)[:, None, :]  # (N, 1, S)
        return (logits * m).sum(-1) / m.sum(-1)  # (N, K): mean over the strip's segments


def _receptive_field(cfg: HannunConfig) -> int:
    """Input samples one output column sees (every convolution, strides included)."""
    rf, jump = cfg.kernel_size, 1  # the stem
    for i in range(cfg.n_blocks):
        rf += (cfg.kernel_size - 1) * jump  # conv1 (its stride applies after)
        jump *= cfg.stride(i)
        rf += (cfg.kernel_size - 1) * jump  # conv2
    return rf


_SMALL = {"base_filters": 8, "n_blocks": 4, "kernel_size": 7, "dropout": 0.0}


@register_model("hannun_segments", example=ModelExample(shapes=((1, 64), (1,)), params=_SMALL))
def hannun_segments(
    n_inputs: int,
    n_classes: int,
    base_filters: int = 32,
    n_blocks: int = 16,
    kernel_size: int = 16,
    dropout: float = 0.2,
    input_stride: int = 1,
    train_crop: int = 0,
    n_rr: int = 0,
    rr_hidden: int = 32,
) -> HannunSegments:
    """Hannun 2019 ResNet with per-segment rhythm logits pooled to a strip label (x, length)."""
    for key, value in (("input_stride", input_stride), ("train_crop", train_crop)):
        if not isinstance(value, int) or value < (1 if key == "input_stride" else 0):
            raise ModelError(fmt("a positive int" if key == "input_stride" else "an int >= 0",
                                 value, f"model.params.{key}", "use e.g. 3"))  # fmt: skip
    cfg = HannunConfig(n_inputs, n_classes, base_filters, n_blocks, kernel_size, dropout)
    return HannunSegments(cfg, input_stride, train_crop, n_rr, rr_hidden)

"""The 34-layer 1-D residual network of Hannun et al. 2019 (Nature Medicine) for single-lead ECG.

Architecture as in the paper and its reference code (awni/ecg, ``network.py``), the same
network as Rajpurkar et al. 2017: a first conv (32 filters, kernel 16) with BN-ReLU, then 16
residual blocks of two convs each; every conv after the first is pre-activated
(BN -> ReLU -> dropout -> conv; no dropout before a block's first conv, no BN-ReLU before
block 0's first conv since the stem just applied them). Every other block subsamples by 2
(its first conv has stride 2 and its shortcut is a max-pool of 2); the filter count starts
at 32 and doubles every 4 blocks, the shortcut being zero-padded on the channel axis when it
does. A final BN-ReLU closes the trunk. Hannun predicts one rhythm per 256-sample window;
we classify a whole window or beat, so the trunk is followed by global average pooling over
time and a linear head. Convs use TensorFlow-style 'same' padding (output ceil(T / stride)),
so any length T works.

Default: ~10.5M parameters (paper size). A CPU-friendly version is e.g.
``create_model("hannun_resnet1d", 1, 5, base_filters=16, n_blocks=8)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.registry import ModelExample, register_model
from medtorch.models.rr_gate import RRGate


class SameConv1d(nn.Conv1d):
    """Conv1d with TensorFlow 'same' padding: output length ceil(T / stride) for any T and kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, t = self.kernel_size[0], self.stride[0], x.shape[-1]
        # ceil via (t + s - 1) // s: the ONNX tracer turns // into truncating Div, so no negatives
        total = max(((t + s - 1) // s - 1) * s + k - t, 0)
        x = F.pad(x, (total // 2, total - total // 2))  # TF puts the extra sample on the right
        return super().forward(x)  # (N, C_out, ceil(T / s))


class SamePool1d(nn.Module):
    """Max-pool with TensorFlow 'same' semantics: output ceil(T / stride) for any T.

    The tail is padded explicitly with -inf and pooled without ``ceil_mode``: ONNX Runtime
    computes a different output length for ``ceil_mode=True`` than PyTorch on some lengths,
    which broke the residual Add of exported models.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, t = self.stride, x.shape[-1]
        x = F.pad(x, (0, (t + s - 1) // s * s - t), value=float("-inf"))  # (N, C, s * ceil(T / s))
        return F.max_pool1d(x, s)  # (N, C, ceil(T / s))


class HannunBlock(nn.Module):
    """Pre-activation residual block: [BN-ReLU-(dropout)-conv] x 2 + max-pool / zero-pad shortcut."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        dropout: float,
        first: bool,
        shortcut: str,
    ) -> None:
        super().__init__()
        # Block 0's first conv directly follows the stem's BN-ReLU, so it is not pre-activated.
        self.pre1 = nn.Identity() if first else nn.Sequential(nn.BatchNorm1d(c_in), nn.ReLU())
        self.conv1 = SameConv1d(c_in, c_out, kernel_size, stride)
        self.pre2 = nn.Sequential(nn.BatchNorm1d(c_out), nn.ReLU(), nn.Dropout(dropout))
        self.conv2 = SameConv1d(c_out, c_out, kernel_size)
        self.pool = SamePool1d(stride) if stride > 1 else nn.Identity()
        self.c_pad = c_out - c_in
        self.proj: nn.Module | None = None
        if self.c_pad and shortcut == "conv":  # an option; the paper zero-pads
            self.proj = nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.pool(x)  # (N, C_in, ceil(T / stride))
        if self.proj is not None:
            short = self.proj(short)  # (N, C_out, T')
        elif self.c_pad:
            short = F.pad(short, (0, 0, 0, self.c_pad))  # zero channels: (N, C_out, T')
        out = self.conv1(self.pre1(x))  # (N, C_out, ceil(T / stride))
        out = self.conv2(self.pre2(out))
        return out + short


@dataclass(frozen=True)
class HannunConfig:
    n_inputs: int
    n_classes: int
    base_filters: int = 32
    n_blocks: int = 16
    kernel_size: int = 16
    dropout: float = 0.2
    subsample_every: int = 2
    double_every: int = 4
    shortcut: str = "zeropad"  # or "conv" (1x1 projection when channels increase)

    def filters(self, index: int) -> int:
        return self.base_filters * 2 ** (index // self.double_every)

    def stride(self, index: int) -> int:
        # blocks 1, 3, 5, ... subsample for subsample_every=2, as in awni/ecg [1, 2, 1, 2, ...]
        return 2 if index % self.subsample_every == self.subsample_every - 1 else 1


class HannunResNet1d(nn.Module):
    """Hannun et al. 2019 residual trunk + global average pooling + linear head (x: (N, C, T))."""

    def __init__(self, cfg: HannunConfig, n_extra: int = 0) -> None:
        super().__init__()
        _validate(cfg)
        self.cfg = cfg
        self.stem = nn.Sequential(
            SameConv1d(cfg.n_inputs, cfg.base_filters, cfg.kernel_size),
            nn.BatchNorm1d(cfg.base_filters),
            nn.ReLU(),
        )
        blocks, c_in = [], cfg.base_filters
        for i in range(cfg.n_blocks):
            c_out = cfg.filters(i)
            blocks.append(
                HannunBlock(
                    c_in,
                    c_out,
                    cfg.kernel_size,
                    cfg.stride(i),
                    cfg.dropout,
                    first=i == 0,
                    shortcut=cfg.shortcut,
                )
            )
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.post = nn.Sequential(nn.BatchNorm1d(c_in), nn.ReLU())
        self.n_features = c_in
        self.head = nn.Linear(c_in + n_extra, cfg.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, C, T) -> (N, F0, T)
        x = self.post(self.blocks(x))  # (N, F_last, T / 2**(n_blocks // subsample_every))
        return x.mean(dim=-1)  # (N, F_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, n_classes)


class HannunResNet1dRR(HannunResNet1d):
    """Hannun trunk on the beat/window plus a small MLP on RR-interval features, concatenated.

    ``rr_relative``: also feed ``log(rr[:, i] / rr[:, -1])`` for every feature but the last
    (the record-average RR in ``mitdb_aami_beats``), i.e. prematurity relative to the
    patient's own rhythm. Ratios are hard for a one-layer MLP to form from raw seconds, and
    they are what separates an SVEB from a normal beat of a faster heart.
    """

    def __init__(
        self,
        cfg: HannunConfig,
        n_rr: int = 4,
        rr_hidden: int = 16,
        rr_relative: bool = False,
        gate: RRGate | None = None,
        n_rr_net: int | None = None,
    ) -> None:
        n_net = n_rr if n_rr_net is None else n_rr_net  # the leading features the MLP reads
        n_in = n_net + (n_net - 1 if rr_relative else 0)
        super().__init__(cfg, n_extra=rr_hidden)
        self.rr_relative, self.n_rr_net = rr_relative, (None if n_net == n_rr else n_net)
        self.rr_mlp = nn.Sequential(nn.Linear(n_in, rr_hidden), nn.ReLU())
        self.rr_gate = gate
        self.after_fit_on: tuple[str, ...] = ("train",)  # model.params.after_training_on

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rr_in = rr
        if self.n_rr_net is not None:
            rr = rr[:, : self.n_rr_net]
        if self.rr_relative:
            r = rr.clamp_min(1e-3)
            rr = torch.cat([rr, torch.log(r[:, :-1] / r[:, -1:])], dim=1)  # (N, 2 n_rr - 1)
        feat = torch.cat([self.features(x), self.rr_mlp(rr)], dim=1)  # (N, F_last + rr_hidden)
        logits = self.head(feat)  # (N, n_classes)
        return logits if self.rr_gate is None else self.rr_gate(logits, rr_in)

    def fit_after_training(
        self, inputs: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray | None = None
    ) -> dict | None:
        """Fit the RR gate (if any) on the given beats (the pipeline passes train, or train and
        valid: ``model.params.after_training_on``, and each beat's record as ``groups``); see
        :mod:`medtorch.models.rr_gate`."""
        if self.rr_gate is None:
            return None
        summary = self.rr_gate.fit(list(inputs.values())[1], y, groups)
        if summary is not None:
            summary["input"] = list(inputs)[1]  # the input its "features" index
        return summary


def _validate(cfg: HannunConfig) -> None:
    for key in ("base_filters", "n_blocks", "kernel_size", "subsample_every", "double_every"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or value < 1:
            raise ModelError(fmt("a positive int", value, f"model.params.{key}", "use e.g. 16"))
    if not 0.0 <= cfg.dropout < 1.0:
        raise ModelError(
            fmt("a dropout in [0, 1)", cfg.dropout, "model.params.dropout", "use e.g. 0.2")
        )
    if cfg.shortcut not in ("zeropad", "conv"):
        raise ModelError(
            fmt("'zeropad' or 'conv'", cfg.shortcut, "model.params.shortcut", "pick one")
        )


_SMALL = {"base_filters": 8, "n_blocks": 4, "kernel_size": 7, "dropout": 0.0}


@register_model("hannun_resnet1d", example=ModelExample(shapes=((1, 64),), params=_SMALL))
def hannun_resnet1d(
    n_inputs: int,
    n_classes: int,
    base_filters: int = 32,
    n_blocks: int = 16,
    kernel_size: int = 16,
    dropout: float = 0.2,
    subsample_every: int = 2,
    double_every: int = 4,
    shortcut: str = "zeropad",
) -> HannunResNet1d:
    """Hannun et al. 2019 34-layer ECG ResNet (16 blocks, kernel 16), global pooling head."""
    return HannunResNet1d(
        HannunConfig(
            n_inputs,
            n_classes,
            base_filters,
            n_blocks,
            kernel_size,
            dropout,
            subsample_every,
            double_every,
            shortcut,
        )
    )


@register_model(
    "hannun_resnet1d_rr",
    example=ModelExample(shapes=((1, 64), (4,)), params=_SMALL),
    after_fit=True,
)
def hannun_resnet1d_rr(
    n_inputs: int,
    n_classes: int,
    n_rr: int = 4,
    rr_hidden: int = 16,
    rr_relative: bool = False,
    base_filters: int = 32,
    n_blocks: int = 16,
    kernel_size: int = 16,
    dropout: float = 0.2,
    subsample_every: int = 2,
    double_every: int = 4,
    shortcut: str = "zeropad",
    rr_gate_features: int | list[int] = 0,
    rr_net_features: int = 0,
    rr_gate_classes: tuple[int, int] | list[int] = (0, 1),
    rr_gate_weight: float = 10.0,
    rr_gate_c: float = 1.0,
    rr_gate_method: str = "logistic",
    rr_gate_min_ppv: float | None = None,
    after_training_on: str = "train",
) -> HannunResNet1dRR:
    """Hannun ECG ResNet on the beat plus RR-interval features rr (N, n_rr); forward(x, rr).

    ``rr_relative=True`` adds log ratios of each RR feature to the last (record average).
    ``rr_gate_features=k > 0``: a second stage (:class:`~medtorch.models.rr_gate.RRGate`),
    fitted after training, re-splits the probability of the pair ``rr_gate_classes``
    (AAMI N and S: [0, 1]) from the first k RR features (or, given a list, from those
    columns of rr), with ``rr_gate_method``
    "logistic" (``rr_gate_c``: inverse L2 strength) or "trees" (gradient-boosted);
    ``rr_gate_weight``: the second class's loss weight; ``rr_gate_min_ppv``: its operating
    point, the most sensitive one whose record-grouped cross-validated +P on the fitting
    beats is at least this (null: the weighted fit's own 1/2). ``rr_net_features=k > 0``:
    the network's RR MLP reads only the first k features (0: all n_rr), e.g. so that
    features meant for the gate (``task.params.morph_features``) leave the network as it was.
    ``after_training_on``: the split(s) the gate is fitted on, "train" or "train+valid"
    (the validation records' scores are then in-sample for the gate).
    """
    if after_training_on not in ("train", "train+valid"):
        raise ModelError(fmt("train or train+valid", after_training_on,
                             "model.params.after_training_on",
                             "train+valid also fits the gate on the validation records"))  # fmt: skip
    g = rr_gate_features
    if isinstance(g, list):
        ok = bool(g) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_rr
                             for i in g)  # fmt: skip
    else:
        ok = isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= n_rr
    if not ok:
        raise ModelError(
            fmt(
                f"an int in [0, n_rr={n_rr}] or a list of column indices in [0, {n_rr})",
                rr_gate_features,
                "model.params.rr_gate_features",
                "use 0 (no gate), the number of leading RR features the gate reads, or "
                "their indices",
            )
        )
    if not isinstance(rr_net_features, int) or not 0 <= rr_net_features <= n_rr:
        raise ModelError(
            fmt(
                f"an int in [0, n_rr={n_rr}]",
                rr_net_features,
                "model.params.rr_net_features",
                "use 0 (all) or the number of leading RR features the network reads",
            )
        )
    if not isinstance(rr_gate_classes, (list, tuple)) or len(rr_gate_classes) != 2:
        raise ModelError(
            fmt(
                "two class indices",
                rr_gate_classes,
                "model.params.rr_gate_classes",
                "use e.g. [0, 1] for N and S",
            )
        )
    cfg = HannunConfig(
        n_inputs,
        n_classes,
        base_filters,
        n_blocks,
        kernel_size,
        dropout,
        subsample_every,
        double_every,
        shortcut,
    )
    gate = None
    if rr_gate_features:
        gate = RRGate(
            rr_gate_features, n_classes, (int(rr_gate_classes[0]), int(rr_gate_classes[1])),
            weight=float(rr_gate_weight), c=float(rr_gate_c), method=rr_gate_method,
            min_ppv=rr_gate_min_ppv,
        )  # fmt: skip
    model = HannunResNet1dRR(cfg, n_rr=n_rr, rr_hidden=rr_hidden, rr_relative=rr_relative,
                             gate=gate, n_rr_net=rr_net_features or None)  # fmt: skip
    model.after_fit_on = tuple(after_training_on.split("+"))
    return model

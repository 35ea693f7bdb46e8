"""A compact 1-D ResNet for short signals (e.g. 178-sample EEG chunks, 1-2 s ECG windows).

Post-activation basic blocks (He et al. 2016) with BatchNorm, one stride-2 downsampling per
stage after the first, global average (optionally + max) pooling and a linear head. The
default (widths 32-64-128, two blocks each, kernel 5) has about 385k parameters, small
enough to train on a laptop CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.registry import ModelExample, register_model


class BasicBlock1d(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, T / stride)
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@dataclass(frozen=True)
class ResNet1dConfig:
    n_inputs: int
    n_classes: int
    widths: tuple[int, ...] = (32, 64, 128)
    depths: tuple[int, ...] = (2, 2, 2)
    kernel_size: int = 5
    stem_kernel_size: int = 7
    dropout: float = 0.2
    pool: str = "avg"  # "avg" or "avgmax" (concatenate global average and max pooling)
    stem_stride: int = 1


class ResNet1d(nn.Module):
    """Stem conv-BN-ReLU, stages of :class:`BasicBlock1d`, global pooling, dropout, linear head."""

    def __init__(self, cfg: ResNet1dConfig) -> None:
        super().__init__()
        if len(cfg.widths) != len(cfg.depths) or not cfg.widths:
            raise ModelError(
                f"expected as many widths as depths, got widths={list(cfg.widths)} "
                f"depths={list(cfg.depths)} in model.params; give one depth per width"
            )
        if cfg.pool not in ("avg", "avgmax"):
            raise ModelError(fmt("'avg' or 'avgmax'", cfg.pool, "model.params.pool", "pick one"))
        self.cfg = cfg
        self.stem = nn.Sequential(
            nn.Conv1d(
                cfg.n_inputs,
                cfg.widths[0],
                cfg.stem_kernel_size,
                stride=cfg.stem_stride,  # 2 halves every later conv's cost on long windows
                padding=cfg.stem_kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm1d(cfg.widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c_in = cfg.widths[0]
        for i, (width, depth) in enumerate(zip(cfg.widths, cfg.depths)):
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock1d(c_in, width, cfg.kernel_size, stride))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        n_feat = c_in * (2 if cfg.pool == "avgmax" else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(n_feat, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (N, C, T) -> (N, W0, T)
        x = self.blocks(x)  # (N, W_last, T / 2**(stages-1))
        feat = x.mean(dim=-1)  # (N, W_last)
        if self.cfg.pool == "avgmax":
            feat = torch.cat([feat, x.amax(dim=-1)], dim=1)  # (N, 2 * W_last)
        return self.head(self.dropout(feat))  # (N, n_classes)


@register_model(
    "resnet1d",
    example=ModelExample(shapes=((1, 64),), params={"widths": (8, 16), "depths": (1, 1)}),
)
def resnet1d(
    n_inputs: int,
    n_classes: int,
    widths: tuple[int, ...] | list[int] = (32, 64, 128),
    depths: tuple[int, ...] | list[int] = (2, 2, 2),
    kernel_size: int = 5,
    stem_kernel_size: int = 7,
    dropout: float = 0.2,
    pool: str = "avg",
    stem_stride: int = 1,
) -> ResNet1d:
    """Compact 1-D ResNet (basic blocks, BN, global pooling) for short signals (N, C, T)."""
    return ResNet1d(
        ResNet1dConfig(
            n_inputs,
            n_classes,
            tuple(widths),
            tuple(depths),
            kernel_size,
            stem_kernel_size,
            dropout,
            pool,
            stem_stride,
        )
    )

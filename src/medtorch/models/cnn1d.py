"""The 1-D CNN of the CSE6250 lab 2 for UCI epileptic-seizure EEG chunks (N, 1, 178).

Lab definition (``2_CNN.ipynb``, ``ConvNet``)::

    conv1 = nn.Conv1d(in_channels=1, out_channels=6, kernel_size=5)
    pool = nn.MaxPool1d(kernel_size=2)
    conv2 = nn.Conv1d(6, 16, 5)
    fc1 = nn.Linear(in_features=16 * 41, out_features=128)
    fc2 = nn.Linear(128, 64)
    fc3 = nn.Linear(64, 5)
    # forward: pool(relu(conv1)) -> pool(relu(conv2)) -> view(-1, 16*41)
    #          -> relu(fc1) -> relu(fc2) -> fc3

``lab_cnn(1, 5, n_times=178)`` is that network (93,209 parameters); the flatten size is
derived from ``n_times`` instead of hard-coded, so other window lengths work too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medtorch.errors import ModelError, fmt
from medtorch.models.registry import ModelExample, register_model


@dataclass(frozen=True)
class LabCNNConfig:
    n_inputs: int
    n_classes: int
    n_times: int = 178
    channels: tuple[int, int] = (6, 16)
    kernel_size: int = 5
    pool: int = 2
    fc: tuple[int, ...] = (128, 64)
    dropout: float = 0.0

    def flat_len(self) -> int:
        """Time length after the two conv (valid) + pool stages: 178 -> 174 -> 87 -> 83 -> 41."""
        t = self.n_times
        for _ in self.channels:
            t = (t - self.kernel_size + 1) // self.pool
        return t


class LabCNN(nn.Module):
    """Two conv-ReLU-maxpool stages, flatten, fully connected layers with ReLU, linear head."""

    def __init__(self, cfg: LabCNNConfig) -> None:
        super().__init__()
        t = cfg.flat_len()
        if t < 1:
            raise ModelError(
                fmt(
                    f"n_times long enough for two conv(k={cfg.kernel_size}) + "
                    f"pool({cfg.pool}) stages",
                    cfg.n_times,
                    "model.params.n_times",
                    "pass the signal length T of (N, C, T), e.g. 178",
                )
            )
        self.cfg = cfg
        c1, c2 = cfg.channels
        self.features = nn.Sequential(
            nn.Conv1d(cfg.n_inputs, c1, cfg.kernel_size),
            nn.ReLU(),
            nn.MaxPool1d(cfg.pool),
            nn.Conv1d(c1, c2, cfg.kernel_size),
            nn.ReLU(),
            nn.MaxPool1d(cfg.pool),
        )
        layers: list[nn.Module] = []
        width = c2 * t
        for h in cfg.fc:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if cfg.dropout > 0:  # the lab has none; kept optional for its exercise
                layers.append(nn.Dropout(cfg.dropout))
            width = h
        layers.append(nn.Linear(width, cfg.n_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.cfg.n_times:
            raise ModelError(
                fmt(
                    f"signals of length n_times={self.cfg.n_times}",
                    tuple(x.shape),
                    "model input x",
                    "set model.params.n_times to the window length",
                )
            )
        x = self.features(x)  # (N, C, T) -> (N, 16, T')
        x = x.flatten(1)  # (N, 16 * T')
        return self.classifier(x)  # (N, n_classes)


@register_model("lab_cnn", example=ModelExample(shapes=((1, 64),), params={"n_times": 64}))
def lab_cnn(n_inputs: int, n_classes: int, n_times: int = 178, dropout: float = 0.0) -> LabCNN:
    """1-D CNN of the CSE6250 lab (conv 6, conv 16, fc 128-64) for seizure EEG (N, 1, 178)."""
    return LabCNN(LabCNNConfig(n_inputs, n_classes, n_times=n_times, dropout=dropout))

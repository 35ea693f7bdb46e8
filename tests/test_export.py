"""ONNX export of a two-input (x, rr) model and PyTorch/onnxruntime parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from medtorch.errors import MedtorchError
from medtorch.export import check_onnx_parity, export_onnx

pytest.importorskip("onnxruntime")


class BeatNet(nn.Module):
    """A small conv net on a beat window plus RR features, like hannun_resnet1d_rr."""

    def __init__(self, n_rr: int = 4, n_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(1, 8, 7, padding=3), nn.BatchNorm1d(8), nn.ReLU(),
            nn.Conv1d(8, 8, 5, stride=2, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        )  # fmt: skip
        self.head = nn.Linear(8 + n_rr, n_classes)

    def forward(self, x: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).flatten(1)  # (N, 8)
        return self.head(torch.cat([h, rr], dim=1))  # (N, n_classes)


def test_export_and_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BeatNet()
    example = (torch.randn(3, 1, 252), torch.rand(3, 4))
    path = export_onnx(model, example, tmp_path / "m.onnx", input_names=["x", "rr"])
    assert path.is_file() and model.training  # training mode restored
    diff = check_onnx_parity(model, path, example)
    assert diff < 1e-4
    # dynamic batch axis: another batch size runs too
    assert check_onnx_parity(model, path, (torch.randn(17, 1, 252), torch.rand(17, 4))) < 1e-4
    with torch.no_grad():
        model.head.bias += 1.0  # the exported file no longer matches the model
    with pytest.raises(MedtorchError, match="ONNX outputs"):
        check_onnx_parity(model, path, example)


@pytest.mark.parametrize("n_times", [126, 127, 250, 252])
def test_hannun_rr_onnx_parity_any_length(tmp_path: Path, n_times: int) -> None:
    """Odd lengths at stride-2 blocks used to give ONNX a shorter shortcut than PyTorch."""
    from medtorch.models import create_model

    torch.manual_seed(0)
    model = create_model("hannun_resnet1d_rr", n_inputs=1, n_classes=5, base_filters=8,
                         n_blocks=8, kernel_size=8, rr_relative=True).eval()  # fmt: skip
    example = (torch.randn(3, 1, n_times), torch.rand(3, 4) + 0.4)
    path = export_onnx(model, example, tmp_path / "h.onnx", input_names=["x", "rr"])
    assert check_onnx_parity(model, path, example) < 1e-4

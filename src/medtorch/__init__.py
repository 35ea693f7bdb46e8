"""medtorch: deep learning on healthcare data, built on PyTorch."""

__version__ = "0.1.0"

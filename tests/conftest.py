"""Shared fixtures. Tests never touch the network; synthetic data is generated here.

Real-data tests are marked ``realdata`` and use the ``data_dir`` fixture. Where
``MEDTORCH_DATA`` is unset they skip, except in CI (``CI`` set), where a missing
data folder is a failure: in CI the data is there, so a skip would hide a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = os.environ.get("MEDTORCH_DATA")
    if not root:
        if os.environ.get("CI"):
            pytest.fail("MEDTORCH_DATA is unset in CI; .ci/run must set it to ../shared/data")
        pytest.skip("MEDTORCH_DATA unset (real-data tests run in CI)")
    path = Path(root)
    if not path.is_dir():
        pytest.fail(f"MEDTORCH_DATA={root} is not a folder")
    return path


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """The trainer sets process-wide torch options (threads, deterministic kernels); every
    test gets the ones it started with back."""
    import torch

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

"""Model weights as safetensors: a JSON header and raw tensor bytes, no code path at all.

:func:`load_weights` checks the header before the library parses it (its length against the
file's size and a sane maximum) and turns every error the library finds (offsets that
overlap, point past the end or leave gaps, a cut file, a header that is not JSON) into one
:class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from medtorch.errors import MedtorchError
from medtorch.train import atomic

MAX_HEADER_BYTES = 100 * 2**20  # the library's own limit; real headers are a few kB


class CheckpointError(MedtorchError):
    """A checkpoint or weights file is damaged, of another format, or asks to run code."""


def save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a state_dict as safetensors, atomically; ``metadata``: string pairs."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    data = save(tensors, metadata={k: str(v) for k, v in metadata.items()})
    atomic.write_bytes(Path(path), data)


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"expected a safetensors weights file, got {why} in {path}; "
        "the file is damaged or was not written by medtorch: resume or retrain the run"
    )


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file onto the CPU: (state_dict, metadata)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise _refuse(path, f"a file of {len(data)} bytes (no header)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER_BYTES, len(data) - 8):
        raise _refuse(path, f"a header length of {n} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8 : 8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"an invalid header ({str(exc).splitlines()[0][:120]})") from None
    meta = header.get("__metadata__") or {}
    return dict(tensors), {str(k): str(v) for k, v in meta.items()}

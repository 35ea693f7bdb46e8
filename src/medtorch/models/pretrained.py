"""Pretrained weights for a backbone from a file, loaded without running code.

``model.params.weights`` names one of:

- a ``.safetensors`` file (read by :func:`medtorch.train.weights.load_weights`, which
  checks the header first);
- a ``.pt`` / ``.pth`` / ``.bin`` file of a state_dict (``torch.load(weights_only=True)``:
  PyTorch's restricted unpickler refuses any pickled code in one line); a dict holding the
  state_dict under ``state_dict``, ``model`` or ``best_model`` is unwrapped;
- a medtorch run folder: its best weights (``checkpoints/best.safetensors``), which is how a
  backbone pretrained on one of our datasets is fine-tuned on another.

Keys are matched by name after dropping a ``module.`` prefix (DDP) . The new head's tensors
(``head_prefixes``) may differ in shape or be absent: they keep their fresh initialisation,
which is logged. Anything else missing, unexpected or of the wrong shape is one ConfigError
line naming the file and the first keys, since a backbone that silently half-loads trains
from noise while looking pretrained.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from medtorch.errors import ConfigError, fmt

log = logging.getLogger("medtorch")

WHERE = "model.params.weights"


def read_state_file(path: str | Path, where: str = WHERE) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` (safetensors, a torch file read with weights_only, or a
    run folder's best weights), on the CPU."""
    from medtorch.train.weights import CheckpointError, load_weights

    p = Path(path).expanduser()
    if p.is_dir():
        run_best = p / "checkpoints" / "best.safetensors"
        if not run_best.is_file():
            raise ConfigError(fmt("a weights file or a run folder with checkpoints/best.safetensors",
                                  f"a folder without it ({p})", where,
                                  "point to the file, or to a finished medtorch run"))  # fmt: skip
        p = run_best
    if not p.is_file():
        raise ConfigError(fmt("an existing weights file (.safetensors, .pt, .pth)", str(p), where,
                              "check the path (relative paths are from the working folder)"))  # fmt: skip
    if p.suffix == ".safetensors":
        try:
            state, _ = load_weights(p)
        except CheckpointError as exc:
            raise ConfigError(f"{exc} ({where})") from None
        return state
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(fmt("a weights file with tensors only", "a file that asks to run code "
                              f"or is not a torch file ({str(exc).splitlines()[0][:100]})",
                              f"{p} ({where})", "use a state_dict saved with torch.save or "
                              "safetensors")) from None  # fmt: skip
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConfigError(fmt("a readable torch weights file", f"{type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:100]}", f"{p} ({where})",
                              "the file is damaged or of another format")) from None  # fmt: skip
    for key in ("state_dict", "model", "best_model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(fmt("a state_dict (names -> tensors)", type(obj).__name__,
                              f"{p} ({where})", "save model.state_dict(), not the model"))  # fmt: skip
    return {str(k): v for k, v in obj.items()}


def load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    head_prefixes: Sequence[str] = (),
    where: str = WHERE,
) -> list[str]:
    """Copy ``state`` into ``model``; return the head keys left at their initialisation.

    Everything outside ``head_prefixes`` must match by name and shape."""
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}

    def is_head(k: str) -> bool:
        return any(k.startswith(h) for h in head_prefixes)

    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = sorted(k for k in state if k not in own and not is_head(k))
    shape = [k for k in own if k in state and not is_head(k) and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[:3]})")
        if shape:
            k = shape[0]
            parts.append(f"{len(shape)} of another shape (first {k}: file "
                         f"{tuple(state[k].shape)}, model {tuple(own[k].shape)})")  # fmt: skip
        raise ConfigError(fmt(f"weights of this {type(model).__name__}", "; ".join(parts),
                              f"{source} ({where})", "use weights of the same architecture "
                              "(model.params.arch) and input channels"))  # fmt: skip
    fresh = [k for k in own if is_head(k) and (k not in state or state[k].shape != own[k].shape)]
    load = {k: v for k, v in state.items() if k in own and k not in fresh}
    model.load_state_dict({**own, **load})
    if fresh:
        log.info("%s: %d head tensors start fresh (%s)", source, len(fresh), ", ".join(fresh[:4]))
    return fresh

"""Attribution methods by kind of input: ``register_explainer(Explainer(kind, ...))``.

Each module of this package declares the method for one kind of main input (``x``) and how
its maps are drawn; the run's task declares the kind, so nothing here or in the pipeline
names a modality. Modules named by the ``medtorch.explainers`` entry-point group may add
methods for other kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.errors import MedtorchError


@dataclass(frozen=True)
class Panel:
    """One drawn sample: its main input as shown (before encoding where known), its map
    (the shape the explainer returns for one sample) and a caption."""

    x: np.ndarray
    amap: np.ndarray
    title: str


@dataclass(frozen=True)
class Explainer:
    """How the samples of one kind of main input are attributed and drawn.

    kind: the input kind (as tasks declare it).
    method: a short name of the method, shown in the report and the JSON.
    attribute: ``(model, inputs, target) -> (N, ...) float maps`` (non-negative: how much
        each element supports class ``target[i]``); ``inputs`` are the model's encoded
        input tensors in order (the first is attributed, the others are passed along).
    draw: ``(panels, path) -> None`` writes one PNG of the panels (one row).
    note: one sentence for the report on how to read the maps.
    """

    kind: str
    method: str
    attribute: Callable[..., np.ndarray]
    draw: Callable[[Sequence[Panel], Path], None]
    note: str = ""


_EXPLAINERS: dict[str, Explainer] = {}
_DISCOVERED = False


def register_explainer(explainer: Explainer) -> Explainer:
    """Declare the attribution method of one input kind (the last one registered wins)."""
    _EXPLAINERS[explainer.kind] = explainer
    return explainer


def get_explainer(kind: str) -> Explainer | None:
    """The attribution method of inputs of ``kind``; None when no method is declared."""
    global _DISCOVERED
    if not _DISCOVERED:
        _DISCOVERED = True
        from medtorch.discovery import discover

        discover("medtorch.explain", "medtorch.explainers", skip=("registry", "core"))
    return _EXPLAINERS.get(kind)


def require_captum(where: str) -> Any:
    """``captum.attr``, or a one-line error naming the ``vision`` extra."""
    try:
        import captum.attr as attr
    except ImportError:
        raise MedtorchError(
            f"expected captum installed (the attribution maps use it), got it missing in "
            f"{where}; pip install medtorch[vision]"
        ) from None
    return attr

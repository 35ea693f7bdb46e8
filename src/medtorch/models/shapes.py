"""A run's model from its data: the shape hints a factory may need (channels, length,
image size, vocabulary) read from the dataset's inputs and the task's input kinds, and the
registered model built with only the hints its factory accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from medtorch.errors import ConfigError
from medtorch.models.registry import create_model, model_params

if TYPE_CHECKING:
    from medtorch.data.dataset import ArrayDataset
    from medtorch.data.tasks.registry import Encoder


def shape_hints(
    ds: ArrayDataset, kinds: dict[str, str] | None = None, encoder: Encoder | None = None
) -> dict[str, int]:
    """Shapes a model factory may need, from the kinds of the task's inputs.

    ``x``: n_inputs (features, channels, or the vocabulary size of codes), n_times
    (signals), image_size (the shorter side of images), n_visits / n_codes or n_events
    (codes); every further input of kind features: ``n_<name>`` (its width). The encoder
    adds what it fitted (e.g. the vocabulary size).
    """
    kinds = dict(kinds or {})
    x = ds.inputs["x"]
    kind = kinds.get("x") or {2: "features", 3: "signal", 4: "image"}.get(x.ndim, "features")
    hints = {"n_inputs": int(x.shape[1])}
    if kind == "signal":
        hints["n_times"] = int(x.shape[2])
    elif kind == "image":
        hints["image_size"] = int(min(x.shape[2], x.shape[3]))
    elif kind == "codes":
        hints.update({"n_visits": int(x.shape[1]), "n_codes": int(x.shape[2])}
                     if x.ndim == 3 else {"n_events": int(x.shape[1])})  # fmt: skip
    for name, arr in list(ds.inputs.items())[1:]:
        if kinds.get(name, "features") == "features" and arr.ndim == 2:
            hints[f"n_{name}"] = int(arr.shape[1])
    if encoder is not None:
        hints.update(encoder.hints())
    return hints


def build_model(
    name: str, params: dict[str, Any], hints: dict[str, int], n_classes: int
) -> nn.Module:
    """Create a registered model, passing only the shape hints its factory accepts."""
    accepted = model_params(name)
    kwargs: dict[str, Any] = {k: v for k, v in hints.items() if k == "n_inputs" or k in accepted}
    for k in params:
        if k in ("n_inputs", "n_classes"):
            raise ConfigError(
                f"expected shapes to be derived from the data, got {k!r} in model.params; "
                "remove it (medtorch sets it from the dataset)"
            )
    kwargs.update(params)
    return create_model(name, n_classes=n_classes, **kwargs)

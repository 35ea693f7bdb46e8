"""Model zoo. Every module of this package is found and imported by the registry on first
use (each registers its models), so a new model is one new file here.

>>> import medtorch as mt
>>> "lab_cnn" in mt.models.list()
True
>>> net = mt.models.create("lab_cnn", n_inputs=1, n_classes=5, n_times=178)
>>> type(net).__name__
'LabCNN'
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from medtorch.models.registry import (
    ModelExample,
    create_model,
    list_models,
    model_info,
    model_params,
    register_model,
)

if TYPE_CHECKING:
    from torch import nn

    from medtorch.data.dataset import ArrayDataset

__all__ = [
    "ModelExample",
    "create",
    "create_model",
    "describe",
    "list",
    "list_models",
    "model_info",
    "model_params",
    "register_model",
]


def list(pattern: str = "*") -> builtins.list[str]:
    """Registered model names matching a shell-style ``pattern`` (``medtorch models``).

    >>> list("retain*")
    ['retain']
    """
    return list_models(pattern)


def describe(name: str) -> str:
    """The one-line description of model ``name`` (the first line of its docstring)."""
    return model_info(name)


def create(
    name: str,
    n_inputs: int | None = None,
    n_classes: int | None = None,
    *,
    dataset: ArrayDataset | None = None,
    **params: Any,
) -> nn.Module:
    """Build a registered model; it returns logits ``(N, n_classes)``.

    Give the shapes (``n_inputs``, ``n_classes``, and any hint the model takes, e.g.
    ``n_times``), or ``dataset=`` to derive them from an ArrayDataset the way a run does
    (its inputs' kinds: channels, length, image size, vocabulary). ``params`` are the
    recipe's ``model.params``; an unknown one is the CLI's one-line ``ModelError``.

    >>> ds = mt.datasets.load("seizure_5class")  # doctest: +SKIP
    >>> mt.models.create("lab_cnn", dataset=ds)  # n_inputs 1, n_times 178, 5 classes  # doctest: +SKIP
    >>> create("lab_cnn", n_inputs=1, n_classes=5, widht=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medtorch.errors.ModelError: expected a parameter of model 'lab_cnn', got 'widht' in model.params; ...
    """
    from medtorch.errors import ModelError, fmt

    if dataset is not None:
        from medtorch.data.tasks.registry import get_task
        from medtorch.models.shapes import build_model, shape_hints

        kinds: dict[str, str] | None = None
        if isinstance(dataset.meta.get("task"), str):
            kinds = dict(get_task(dataset.meta["task"]).kinds(dataset.meta.get("task_params")))
        hints = shape_hints(dataset, kinds)
        if n_inputs is not None:
            hints["n_inputs"] = n_inputs
        return build_model(name, params, hints, n_classes or dataset.n_classes)
    if n_inputs is None or n_classes is None:
        raise ModelError(fmt("n_inputs and n_classes (or dataset=)", {"n_inputs": n_inputs,
                             "n_classes": n_classes}, f"mt.models.create({name!r})",
                             "pass both, or dataset=mt.datasets.load(...)"))  # fmt: skip
    return create_model(name, n_inputs=n_inputs, n_classes=n_classes, **params)

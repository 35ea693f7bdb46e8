"""Model registry: ``@register_model`` + ``create_model(name)`` + ``list_models(pattern)``.

A model is a factory ``(n_inputs: int, n_classes: int, **params) -> nn.Module``. Models take
shapes, not datasets, and return logits (N, n_classes); the loss lives in the trainer.

Each entry also carries a small :class:`ModelExample` (tiny input shapes and params). The
generic model tests build every registered model from it, so a model added later is tested
with no edit to the tests, and no table of shapes is kept beside the registry.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from medtorch.errors import MedtorchError, ModelError, fmt

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)


@dataclass(frozen=True)
class ModelExample:
    """Small, fast-to-run shapes and params for one model (tests, docs, smoke runs).

    shapes: one shape per model input, without the batch axis; the first is ``x``
        ((F,) for vectors, (C, T) for signals), ``n_inputs`` is its first entry.
    params: keyword params passed to the factory (keep the model small).
    """

    shapes: tuple[tuple[int, ...], ...]
    n_classes: int = 3
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return self.shapes[0][0]

    def make_inputs(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Random float32 inputs, one tensor per entry of ``shapes``, each (batch_size, *shape)."""
        return tuple(torch.randn(batch_size, *s, generator=generator) for s in self.shapes)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Factory
    example: ModelExample


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, example: ModelExample | None = None) -> Callable[[F], F]:
    """Register a model factory under ``name``.

    ``example`` gives tiny shapes for the generic tests; without it the model is tested on
    (N, 1, 64) signals with its default params.
    """

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise ModelError(
                fmt(
                    "a new model name",
                    name,
                    "register_model",
                    "pick a name that is not registered yet",
                )
            )
        _REGISTRY[name] = ModelEntry(name, factory, example or ModelExample(shapes=((1, 64),)))
        return factory

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern``.

    >>> list_models("lab_*")
    ['lab_cnn']
    """
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises :class:`ModelError` with suggestions."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = list_models()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ModelError(
            fmt("a registered model name", name, "model.name", f"{hint}known: {', '.join(known)}")
        ) from None


def model_info(name: str) -> str:
    """First line of the factory's docstring (a one-line description)."""
    doc = inspect.getdoc(get_entry(name).factory) or ""
    return doc.splitlines()[0] if doc else ""


def model_params(name: str) -> list[str]:
    """Keyword params the factory of ``name`` accepts, besides ``n_inputs`` and ``n_classes``.

    Lets a caller pass optional shape params (e.g. ``n_times``) only to models that take them.
    """
    sig = inspect.signature(get_entry(name).factory)
    return [p for p in sig.parameters if p not in ("n_inputs", "n_classes")]


def create_model(name: str, n_inputs: int, n_classes: int, **params: Any) -> nn.Module:
    """Build the registered model ``name`` for ``n_inputs`` inputs and ``n_classes`` logits.

    Unknown or invalid params raise :class:`ModelError` naming ``model.params``.
    """
    entry = get_entry(name)
    accepted = model_params(name)
    sig = inspect.signature(entry.factory)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    for key in params:
        if not takes_any and key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ModelError(
                fmt(
                    f"a parameter of model {name!r}",
                    key,
                    "model.params",
                    f"{hint}accepted: {', '.join(accepted) or 'none'}",
                )
            )
    try:
        return entry.factory(n_inputs=n_inputs, n_classes=n_classes, **params)
    except MedtorchError:
        raise
    except (TypeError, ValueError) as exc:
        # e.g. a param of the wrong type (hidden_size="big") reaching torch
        raise ModelError(
            fmt(
                f"valid parameters for model {name!r}",
                params,
                "model.params",
                f"fix the value ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            )
        ) from None

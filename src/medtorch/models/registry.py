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
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

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
    """after_fit: the model has a second stage fitted after training (see
    :class:`AfterFit`); the pipeline fits it, then writes it into every checkpoint."""

    name: str
    factory: Factory
    example: ModelExample
    after_fit: bool = False


@runtime_checkable
class AfterFit(Protocol):
    """A model with a second stage fitted after the network trains (``after_fit=True``).

    ``after_fit_on``: the splits it is fitted on ("train", or "train" and "valid"; never
    test), from its own ``model.params.after_training_on``.
    ``fit_after_training(inputs, y, groups) -> summary | None`` fits it on those splits'
    inputs (name -> array), labels and groups; the summary goes into metrics.json.
    """

    after_fit_on: tuple[str, ...]

    def fit_after_training(
        self, inputs: dict[str, Any], y: Any, groups: Any = None
    ) -> dict[str, Any] | None: ...


_STAGE_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {}


def register_stage_description(method: str, fn: Callable[[dict[str, Any]], str]) -> None:
    """How the run report describes a second stage's summary whose ``method`` is ``method``."""
    _STAGE_TEXT[method] = fn


def stage_description(summary: dict[str, Any]) -> str | None:
    """The registered description of a second stage's summary (None: none registered)."""
    _discover()
    fn = _STAGE_TEXT.get(str(summary.get("method")))
    return fn(summary) if fn is not None else None


_REGISTRY: dict[str, ModelEntry] = {}
_DISCOVERED = False


def _discover() -> None:
    """Import every module of ``medtorch.models`` (each registers its models), then the
    modules named by the ``medtorch.models`` entry-point group (other packages' models)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from importlib import metadata

    package = importlib.import_module("medtorch.models")
    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name != "registry":
            importlib.import_module(f"medtorch.models.{mod.name}")
    for ep in metadata.entry_points(group="medtorch.models"):
        importlib.import_module(ep.value)


def register_model(
    name: str, example: ModelExample | None = None, *, after_fit: bool = False
) -> Callable[[F], F]:
    """Register a model factory under ``name``.

    ``example`` gives tiny shapes for the generic tests; without it the model is tested on
    (N, 1, 64) signals with its default params. ``after_fit``: its models implement
    :class:`AfterFit`.
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
        _REGISTRY[name] = ModelEntry(
            name, factory, example or ModelExample(shapes=((1, 64),)), after_fit
        )
        return factory

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern``.

    >>> list_models("lab_*")
    ['lab_cnn']
    """
    _discover()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises :class:`ModelError` with suggestions."""
    _discover()
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

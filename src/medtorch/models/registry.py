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
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from medtorch.errors import MedtorchError, ModelError, fmt

Factory = Callable[..., nn.Module]
F = TypeVar("F", bound=Factory)


INPUT_KINDS = ("float", "codes", "times", "values")


@dataclass(frozen=True)
class ModelExample:
    """Small, fast-to-run shapes and params for one model (tests, docs, smoke runs).

    shapes: one shape per model input, without the batch axis; the first is ``x``
        ((F,) for vectors, (C, T) for signals, (V, C) visits of codes, (E,) events).
    params: keyword params passed to the factory (keep the model small).
    kinds: one kind per input (default all ``"float"``, random normal):
        ``"codes"``: int64 code indices as the EHR contract lays them out: 0 = padding,
        1..vocab_size-1 real (1 = unknown), each sample a random number (>= 1) of
        left-aligned rows (visits or events), each visit a random number (>= 1) of
        left-aligned codes; ``"times"``: float32 per row of the codes input, 0 on padding
        rows: for visits days to the prediction time (> 0, the oldest visit largest), for
        events hours from admission start (increasing, some negative); ``"values"``:
        float32 normal per row, 0 on padding rows. Times and values follow the first codes input.
    vocab_size: the number of code ids (with pad 0 and unknown 1); ``n_inputs`` of a model
        with a codes input (its factory's vocabulary size).
    """

    shapes: tuple[tuple[int, ...], ...]
    n_classes: int = 3
    params: dict[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    vocab_size: int = 0

    def __post_init__(self) -> None:
        kinds = self.input_kinds
        assert len(kinds) == len(self.shapes), "one kind per input shape"
        assert set(kinds) <= set(INPUT_KINDS), f"kinds must be among {INPUT_KINDS}"
        assert self.has_codes == (self.vocab_size >= 3), "codes need vocab_size >= 3"
        assert kinds[0] in ("float", "codes"), "x is a float or codes input"
        assert self.has_codes or set(kinds) == {"float"}, "times/values follow a codes input"

    @property
    def input_kinds(self) -> tuple[str, ...]:
        return self.kinds or ("float",) * len(self.shapes)

    @property
    def has_codes(self) -> bool:
        """True when an input holds integer codes (the padding-invariance test applies)."""
        return "codes" in self.input_kinds

    @property
    def n_inputs(self) -> int:
        return self.vocab_size if self.has_codes else self.shapes[0][0]

    def make_inputs(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Random inputs, one tensor per entry of ``shapes``, each (batch_size, *shape):
        float32 normal, or EHR codes / times / values as ``kinds`` describes."""
        g = generator
        row_mask: torch.Tensor | None = None  # (N, rows) True on real rows of the codes input
        visits = False  # the codes input is (rows, codes) visits rather than (events,)
        out: list[torch.Tensor] = []
        for shape, kind in zip(self.shapes, self.input_kinds):
            if kind == "float":
                out.append(torch.randn(batch_size, *shape, generator=g))
            elif kind == "codes":
                codes = _random_codes(batch_size, shape, self.vocab_size, g)
                if row_mask is None:
                    row_mask = codes.reshape(batch_size, shape[0], -1)[..., 0] != 0
                    visits = len(shape) == 2
                out.append(codes)
            else:
                assert row_mask is not None and shape == tuple(row_mask.shape[1:])
                if kind == "times":
                    gaps = torch.rand(batch_size, shape[0], generator=g) * 60.0 * row_mask
                    if visits:  # days to the prediction time: the oldest visit largest
                        vals = gaps.flip(1).cumsum(1).flip(1) - gaps + 0.5
                    else:  # hours from admission start, increasing, earlier ones negative
                        vals = gaps.cumsum(1) - 30.0
                else:
                    vals = torch.randn(batch_size, shape[0], generator=g)
                out.append(vals * row_mask)
        return tuple(out)

    def pad_inputs(self, inputs: tuple[torch.Tensor, ...], extra: int) -> tuple[torch.Tensor, ...]:
        """``inputs`` with ``extra`` padding (zeros) appended on every non-batch axis of the
        codes, times and values inputs (more visits, more codes per visit, more events)."""
        out = []
        for arr, kind in zip(inputs, self.input_kinds):
            if kind != "float":
                # F.pad takes (left, right) pairs from the last axis backwards
                arr = nn.functional.pad(arr, (0, extra) * (arr.ndim - 1))
            out.append(arr)
        return tuple(out)


def _random_codes(
    n: int, shape: tuple[int, ...], vocab_size: int, g: torch.Generator | None
) -> torch.Tensor:
    """(n, *shape) int64 codes in 1..vocab_size-1: each sample keeps a random number (>= 1)
    of left-aligned rows, each row of a (rows, width) shape a random number (>= 1) of
    left-aligned codes; the rest is padding 0."""
    codes = torch.randint(1, vocab_size, (n, *shape), generator=g)
    rows = shape[0]
    n_rows = torch.randint(1, rows + 1, (n, 1), generator=g)
    keep = torch.arange(rows) < n_rows  # (n, rows)
    if len(shape) == 2:
        n_codes = torch.randint(1, shape[1] + 1, (n, rows, 1), generator=g)
        keep = keep[..., None] & (torch.arange(shape[1]) < n_codes)  # (n, rows, width)
    return codes * keep


@dataclass(frozen=True)
class ModelEntry:
    """after_fit: the model has a second stage fitted after training (see
    :class:`AfterFit`); the pipeline fits it, then writes it into every checkpoint.
    restore: params -> the params that rebuild a trained model without its starting weights
    (a pretrained backbone's file is not needed again: the checkpoint replaces them)."""

    name: str
    factory: Factory
    example: ModelExample
    after_fit: bool = False
    restore: Callable[[dict[str, Any]], dict[str, Any]] | None = None


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


@runtime_checkable
class Explains(Protocol):
    """A model that attributes its score to the elements of its main input:
    ``explain(*inputs) -> (weights of the steps (N, S), contributions (N, S, C))`` (RETAIN:
    the visit weights alpha and each code's contribution to the positive-class log-odds).
    The pipeline writes the attributions of a few test samples into ``explanations.json``
    and the report shows them."""

    def explain(self, *inputs: Any) -> tuple[Any, Any]: ...


@runtime_checkable
class FineTunable(Protocol):
    """A backbone whose layer groups ``trainer.finetune`` can freeze and unfreeze in stages:
    ``finetune_groups() -> [(name, [parameters])]`` from the input to the output, the last
    group the new head, every parameter in exactly one group (``resnet2d``: stem,
    layer1-layer4, head). Image backbones also name ``cam_layer``, the module whose output
    Grad-CAM reads."""

    def finetune_groups(self) -> list[tuple[str, list[Any]]]: ...


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
    from medtorch.discovery import discover

    discover("medtorch.models", "medtorch.models")


def register_model(
    name: str,
    example: ModelExample | None = None,
    *,
    after_fit: bool = False,
    restore: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Register a model factory under ``name``.

    ``example`` gives tiny shapes for the generic tests; without it the model is tested on
    (N, 1, 64) signals with its default params. ``after_fit``: its models implement
    :class:`AfterFit`. ``restore``: maps a run's params to those that rebuild the trained
    network without reading its starting weights again (pretrained backbones).
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
            name, factory, example or ModelExample(shapes=((1, 64),)), after_fit, restore
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

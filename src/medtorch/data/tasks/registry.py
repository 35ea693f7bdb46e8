"""Task registry: a task is a declaration of everything a run needs to know about it.

A task turns source files into one :class:`ArrayDataset` and says, once, what the rest of
the run needs: its inputs and their kinds (which fix the model's size hints and the valid
augmentations), the metric families that score it, how its inputs are encoded with
training-only statistics, how ``medtorch predict`` reads a new input for it, and a tiny
example fixture for the generic task tests. The pipeline, ``predict``, ``export``, the
config and the report read these declarations and name no task, dataset or modality.

A task is registered by decorating its build function; every module of this package is
discovered on first use (no import list to edit)::

    @register_task("seizure_binary", inputs={"x": "signal"}, reader=read_signal_csv_input)
    def seizure_binary(data_dir: Path | None, path: str | None = None) -> ArrayDataset: ...

Modules outside this package (another package's plug-ins) register through the
``medtorch.tasks`` entry-point group: each entry point names a module to import.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, DataError

TaskFn = Callable[..., ArrayDataset]
InputKind = Literal["signal", "image", "features", "codes", "times", "values"]


@dataclass(frozen=True)
class KindInfo:
    """What a kind of input allows: the ``trainer.augment`` keys and test-time views."""

    augment: tuple[str, ...] = ()
    tta: bool = False


INPUT_KINDS: dict[str, KindInfo] = {
    "signal": KindInfo(("reverse_time", "flip_sign", "gain", "time_shift", "noise_std"), True),
    "image": KindInfo(("dihedral", "transforms"), True),
    "features": KindInfo(),
    "codes": KindInfo(),  # integer code indices (embeddings): never flipped or scaled
    "times": KindInfo(),
    "values": KindInfo(),
}


@dataclass
class PredictInput:
    """A new input read for ``medtorch predict``: raw model inputs (before the run's
    encoder), one id per sample, and labels when the file carries them."""

    inputs: dict[str, np.ndarray]
    ids: list[str]
    labels: list[str] | None = None


class InputReader(Protocol):
    """``reader(path, hints, params) -> PredictInput``; ``hints`` are the run's model hints,
    ``params`` its ``task.params``."""

    def __call__(
        self, path: Path, hints: Mapping[str, Any], params: Mapping[str, Any]
    ) -> PredictInput: ...


class Encoder(Protocol):
    """Turns a task's raw inputs into model inputs with statistics fitted on train only
    (a normaliser, a code vocabulary...); saved in the run folder as ``filename``. One that
    fits the label space on train too (the categories of a multi-label task) has
    ``relabel(ds) -> ArrayDataset``: the pipeline calls it once after ``fit``, before the
    partitions are cut, and it returns the dataset with ``y`` and ``class_names`` in that
    label space and what it dropped counted in ``meta["cohort"]``."""

    filename: str

    def transform(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def hints(self) -> dict[str, int]: ...

    def to_dict(self) -> dict[str, Any]: ...


class EncoderType(Protocol):
    """An encoder class. One with ``raw_inputs`` takes a dataset holding those raw inputs
    (e.g. each sample's own codes as one object) and makes the declared inputs itself."""

    filename: str

    def fit(
        self, ds: ArrayDataset, train_index: np.ndarray, settings: Mapping[str, Any]
    ) -> Encoder:
        """Fit on the rows ``train_index`` of ``ds`` (the training partition) only;
        ``settings``: the recipe's ``preprocess`` section."""
        ...

    def from_dict(self, d: dict[str, Any]) -> Encoder: ...


@dataclass(frozen=True)
class TaskExample:
    """A tiny fixture for the generic task tests: ``write(folder) -> task params``.

    The fixture is written under ``folder`` (used as the data folder) and holds
    ``unlabelled`` rows that the task must count as dropped in its cohort.
    """

    write: Callable[[Path], dict[str, Any]]
    unlabelled: int = 1


@dataclass(frozen=True)
class Task:
    """One registered task (see the module docstring).

    inputs: input name -> kind, in the order the model takes them (``x`` first), or a
        function of the task's params giving them (inputs that a param switches on or off,
        a main input whose kind a param chooses): see :meth:`kinds`.
    metrics: the metric families that score it (``medtorch.metrics.families``), or a
        function of the task's params giving them (a param that picks the kind of label,
        e.g. a multi-label dataset among multi-class ones): see :meth:`families`.
    reader: how ``medtorch predict`` reads a new input file (None: predict says so).
    predictor: a whole ``predict`` of its own, for inputs that are not rows of samples
        (a WFDB record becomes beats, windows and episodes); takes the place of ``reader``.
    encoder: the fitted input encoder; None is the ``preprocess.normalize`` normaliser.
    example: the tiny fixture of the generic task tests.
    figures: draws the task's own example figures for the run report,
        ``figures(run_dir, model, test, proba, params) -> [(png name, caption), ...]``
        (PNGs written under ``run_dir/figures``; listed in ``figures.json``), e.g. ECG
        strips with their predicted rhythm per segment.
    """

    name: str
    fn: TaskFn
    description: str
    inputs: Mapping[str, InputKind] | Callable[..., Mapping[str, InputKind]]
    metrics: tuple[str, ...] | Callable[..., tuple[str, ...]] = ("classification",)
    reader: InputReader | None = None
    predictor: Callable[..., str] | None = None
    encoder: EncoderType | None = None
    example: TaskExample | None = None
    options: tuple[str, ...] = field(default=())  # predict options it takes (e.g. lead)
    figures: Callable[..., list[tuple[str, str]]] | None = None

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """``params`` with the build function's defaults filled in."""
        sig = inspect.signature(self.fn)
        full = {p: v.default for p, v in list(sig.parameters.items())[1:]
                if v.default is not inspect.Parameter.empty}  # fmt: skip
        return {**full, **dict(params or {})}

    def kinds(self, params: Mapping[str, Any] | None = None) -> dict[str, InputKind]:
        """Its inputs and their kinds for ``task.params`` ``params`` (defaults filled in)."""
        if not callable(self.inputs):
            return dict(self.inputs)
        kinds = dict(self.inputs(**self._params(params)))
        _check_kinds(kinds, self.name)
        return kinds

    def families(self, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The metric families that score it for ``task.params`` ``params``; the first is
        the base (``multilabel`` for a multi-label task)."""
        if not callable(self.metrics):
            return tuple(self.metrics)
        return tuple(self.metrics(**self._params(params)))

    def valid_augment(self, params: Mapping[str, Any] | None = None) -> set[str]:
        """The ``trainer.augment`` keys its inputs allow."""
        return {a for k in self.kinds(params).values() for a in INPUT_KINDS[k].augment}

    def tta(self, params: Mapping[str, Any] | None = None) -> bool:
        """Whether its main input has test-time views (``eval.tta``)."""
        return INPUT_KINDS[self.kinds(params)["x"]].tta


def _check_kinds(kinds: Mapping[str, str], name: str) -> None:
    bad = {k: v for k, v in kinds.items() if v not in INPUT_KINDS}
    if bad or next(iter(kinds), None) != "x":
        raise ConfigError(
            f"expected inputs starting with 'x' of kinds {', '.join(INPUT_KINDS)}, got "
            f"{dict(kinds)} in register_task({name!r}); fix the declaration"
        )


_TASKS: dict[str, Task] = {}
_DISCOVERED = False


def register_task(
    name: str,
    description: str = "",
    *,
    inputs: Mapping[str, InputKind] | Callable[..., Mapping[str, InputKind]] | None = None,
    metrics: tuple[str, ...] | Callable[..., tuple[str, ...]] = ("classification",),
    reader: InputReader | None = None,
    predictor: Callable[..., str] | None = None,
    encoder: EncoderType | None = None,
    example: TaskExample | None = None,
    options: tuple[str, ...] = (),
    figures: Callable[..., list[tuple[str, str]]] | None = None,
) -> Callable[[TaskFn], TaskFn]:
    """Register ``fn(data_dir, **params) -> ArrayDataset`` under ``name`` with its declaration.

    The description defaults to the first line of the function's docstring; ``inputs``
    defaults to ``{"x": "signal"}``.
    """
    kinds: Mapping[str, InputKind] | Callable[..., Mapping[str, InputKind]] = (
        inputs if inputs is not None else {"x": "signal"}
    )
    if not callable(kinds):
        _check_kinds(kinds, name)

    def deco(fn: TaskFn) -> TaskFn:
        if name in _TASKS and _TASKS[name].fn is not fn:
            raise ConfigError(
                f"expected a new task name, got {name!r} (already registered by "
                f"{_TASKS[name].fn.__module__}) in register_task; pick another name"
            )
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        _TASKS[name] = Task(name, fn, description or (doc[0] if doc else ""), kinds, metrics,
                            reader, predictor, encoder, example, options, figures)  # fmt: skip
        return fn

    return deco


def _discover() -> None:
    """Import every module of this package, then the ``medtorch.tasks`` entry points."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    from medtorch.discovery import discover

    discover("medtorch.data.tasks", "medtorch.tasks")


def list_tasks() -> list[str]:
    """Sorted names of all registered tasks."""
    _discover()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The registered task ``name``; unknown -> ConfigError with close matches."""
    _discover()
    if name not in _TASKS:
        close = difflib.get_close_matches(name, list(_TASKS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"expected a registered task, got {name!r} in task.name; "
            f"{hint}choose one of: {', '.join(list_tasks())}"
        )
    return _TASKS[name]


def build_task(
    name: str, data_dir: Path | None, params: dict[str, Any] | None = None
) -> ArrayDataset:
    """Build the dataset of task ``name`` with ``params`` (from ``task.params``).

    Unknown task -> ConfigError naming ``task.name``; unknown or missing parameter ->
    ConfigError naming ``task.params`` with the accepted parameters. The dataset's inputs
    must be the ones the task declares.
    """
    info = get_task(name)
    params = dict(params or {})
    sig = inspect.signature(info.fn)
    try:
        sig.bind(data_dir, **params)
    except TypeError as exc:
        raise ConfigError(
            f"expected parameters of task {name!r} ({', '.join(task_params(name)) or 'none'}), "
            f"got {sorted(params)} in task.params ({exc}); "
            "remove or rename the unknown key"
        ) from None
    ds = info.fn(data_dir, **params)
    raw = getattr(info.encoder, "raw_inputs", None)  # an encoder that makes the inputs
    declared = list(raw) if raw is not None else list(info.kinds(params))
    if list(ds.inputs) != declared:
        raise ConfigError(
            f"expected inputs {declared} (as task {name!r} declares), got "
            f"{list(ds.inputs)} in its dataset; fix the task's register_task(inputs=...)"
        )
    return ds


def task_params(name: str) -> list[str]:
    """The ``task.params`` keys task ``name`` accepts."""
    sig = inspect.signature(get_task(name).fn)
    return [
        p
        for p in list(sig.parameters)[1:]
        if sig.parameters[p].kind
        not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]


def source_path(data_dir: Path | None, path: str | None, relative: str) -> Path:
    """Where a task reads its source: ``task.params.path`` when given, else ``relative``
    under the data folder; neither is a one-line DataError."""
    if path is not None:
        return Path(path)
    if data_dir is None:
        raise DataError(
            f"expected a data dir holding {relative}, got none in --data-dir / MEDTORCH_DATA; "
            "set it or pass task.params.path"
        )
    return Path(data_dir) / relative

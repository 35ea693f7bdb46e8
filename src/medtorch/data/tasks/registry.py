"""Task registry: a task turns source files into one :class:`ArrayDataset`.

A task is a small function ``fn(data_dir: Path | None, **params) -> ArrayDataset``
registered under a name; recipes pick it with ``task.name`` and ``task.params``::

    @register_task("seizure_binary")
    def seizure_binary(data_dir: Path | None, path: str | None = None) -> ArrayDataset: ...
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, DataError

TaskFn = Callable[..., ArrayDataset]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    fn: TaskFn
    description: str


_TASKS: dict[str, TaskInfo] = {}


def register_task(name: str, description: str = "") -> Callable[[TaskFn], TaskFn]:
    """Register ``fn(data_dir, **params) -> ArrayDataset`` under ``name``.

    The description defaults to the first line of the function's docstring.
    """

    def deco(fn: TaskFn) -> TaskFn:
        if name in _TASKS and _TASKS[name].fn is not fn:
            raise ConfigError(
                f"expected a new task name, got {name!r} (already registered by "
                f"{_TASKS[name].fn.__module__}) in register_task; pick another name"
            )
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        _TASKS[name] = TaskInfo(name, fn, description or (doc[0] if doc else ""))
        return fn

    return deco


def list_tasks() -> list[str]:
    """Sorted names of all registered tasks."""
    return sorted(_TASKS)


def get_task(name: str) -> TaskInfo:
    """The registered task ``name``; unknown -> ConfigError with close matches."""
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
    ConfigError naming ``task.params`` with the accepted parameters.
    """
    info = get_task(name)
    params = dict(params or {})
    sig = inspect.signature(info.fn)
    try:
        sig.bind(data_dir, **params)
    except TypeError as exc:
        accepted = [
            p
            for p in list(sig.parameters)[1:]
            if sig.parameters[p].kind
            not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        ]
        raise ConfigError(
            f"expected parameters of task {name!r} ({', '.join(accepted) or 'none'}), "
            f"got {sorted(params)} in task.params ({exc}); "
            "remove or rename the unknown key"
        ) from None
    return info.fn(data_dir, **params)


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

"""Build a task's samples in memory, for people who write their own training loop.

``mt.datasets.load(task)`` is the first stage of every run (the task turns source files
into an :class:`~medtorch.data.dataset.ArrayDataset`), without the split, the encoder or
the trainer. ``ds.as_torch()`` gives a ``torch.utils.data.TensorDataset``.

>>> import medtorch as mt
>>> ds = mt.datasets.load("seizure_5class")  # the bundled UCI file when no data folder has it
>>> ds.inputs["x"].shape, len(ds.class_names), ds.meta["cohort"]["rows_read"]
((11500, 1, 178), 5, 11500)
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from medtorch.data.dataset import ArrayDataset

__all__ = ["ArrayDataset", "describe", "list", "load"]


def load(task: str, data_dir: str | Path | None = None, **params: Any) -> ArrayDataset:
    """The samples of a registered task (``medtorch tasks``); ``params`` are its
    ``task.params``. ``data_dir``: the data folder, else ``$MEDTORCH_DATA``, else the user
    cache folder. An unknown task or parameter is the CLI's one-line ``ConfigError``.

    >>> load("seizure_binary").class_names
    ['non_seizure', 'seizure']
    >>> load("seizure_binry")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medtorch.errors.ConfigError: expected a registered task, got 'seizure_binry' in task.name; did you mean seizure_binary...
    """
    from medtorch.data.paths import resolve_data_dir
    from medtorch.data.tasks.registry import build_task

    ds = build_task(task, resolve_data_dir(str(data_dir) if data_dir else None), params)
    # what mt.models.create(dataset=ds) reads the inputs' kinds from
    ds.meta.setdefault("task", task)
    ds.meta.setdefault("task_params", dict(params))
    return ds


def list() -> builtins.list[str]:
    """The registered task names (each a ``task.name`` of a recipe).

    >>> "seizure_5class" in list()
    True
    """
    from medtorch.data.tasks.registry import list_tasks

    return list_tasks()


def describe(task: str) -> dict[str, Any]:
    """What a task declares: its description, inputs and their kinds, metric families and
    parameters.

    >>> describe("seizure_5class")["inputs"]
    {'x': 'signal'}
    """
    from medtorch.data.tasks.registry import get_task, task_params

    t = get_task(task)
    return {"name": t.name, "description": t.description, "inputs": t.kinds(),
            "metrics": builtins.list(t.families()), "params": task_params(task)}  # fmt: skip

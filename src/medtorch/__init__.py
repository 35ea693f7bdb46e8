"""medtorch: deep learning on healthcare data, built on PyTorch.

The Python API (the CLI is a thin layer over it):

>>> import medtorch as mt
>>> cfg = mt.load_recipe("lab2_seizure_cnn", overrides={"trainer.max_epochs": 3})
>>> run = mt.train(cfg)  # doctest: +SKIP
>>> run.metrics["test"]["overall"]["auroc"], run.plot("learning_curves")  # doctest: +SKIP

Building blocks for a loop of one's own: ``mt.datasets.load``, ``mt.models.create``,
``mt.splits.make`` (with the leakage audit) and ``mt.metrics.evaluate``. Names are
imported on first use, so ``import medtorch`` (and the CLI) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from medtorch import datasets, metrics, models, splits
    from medtorch.api import load_recipe, open_run, train
    from medtorch.config import RunConfig
    from medtorch.ensemble import score_ensemble
    from medtorch.errors import ConfigError, DataError, MedtorchError
    from medtorch.run import Run

# name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "load_recipe": ("medtorch.api", "load_recipe"),
    # the package medtorch.train, callable as medtorch.api.train (a submodule import would
    # replace a function of that name on this package)
    "train": ("medtorch.train", None),
    "open_run": ("medtorch.api", "open_run"),
    "score_ensemble": ("medtorch.ensemble", "score_ensemble"),
    "Run": ("medtorch.run", "Run"),
    "RunConfig": ("medtorch.config", "RunConfig"),
    "MedtorchError": ("medtorch.errors", "MedtorchError"),
    "ConfigError": ("medtorch.errors", "ConfigError"),
    "DataError": ("medtorch.errors", "DataError"),
    "datasets": ("medtorch.datasets", None),
    "models": ("medtorch.models", None),
    "splits": ("medtorch.splits", None),
    "metrics": ("medtorch.metrics", None),
}

__all__ = [
    "ConfigError",
    "DataError",
    "MedtorchError",
    "Run",
    "RunConfig",
    "__version__",
    "datasets",
    "load_recipe",
    "metrics",
    "models",
    "open_run",
    "score_ensemble",
    "splits",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'medtorch' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

"""Training: the one loop (:class:`Trainer`) and its checkpoint files.

``medtorch.train`` is also the API's :func:`medtorch.api.train`: ``mt.train(recipe)``
calls it (a package and a function cannot share the name otherwise).
"""

import sys
import types
from typing import Any

from medtorch.train.checkpoint import load_checkpoint
from medtorch.train.trainer import HISTORY_COLUMNS, MONITORS, Trainer

__all__ = ["HISTORY_COLUMNS", "MONITORS", "Trainer", "load_checkpoint"]


class _TrainPackage(types.ModuleType):
    """This package, callable as :func:`medtorch.api.train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from medtorch.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _TrainPackage

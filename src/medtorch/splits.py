"""Split a dataset as a recipe's ``split:`` section would, with the leakage audit.

>>> import medtorch as mt
>>> ds = mt.datasets.load("seizure_vs_healthy")
>>> split, audit = mt.splits.make(ds, method="by_recording", seed=0)
>>> sorted(split), audit["leakage_audit"], audit["group_overlap"]["train-test"]
(['test', 'train', 'valid'], 'passed', 0)
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
from pydantic import ValidationError

from medtorch.config import SplitConfig, _explain
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, fmt

__all__ = ["make"]


def make(
    ds: ArrayDataset, method: str = "random", **settings: Any
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split ``ds`` into train / valid / test row indices; returns ``(split, audit)``.

    ``method`` and ``settings`` are the recipe's ``split`` keys (``ratios``, ``seed``,
    ``n_folds``, ``fold``, ``protocol``, ``params``). ``audit`` is what ``splits.json``
    holds: counts per partition, the groups (patients, recordings) shared by two
    partitions, and the leakage audit, which raises :class:`~medtorch.errors.SplitError`
    when a grouped split puts one group in two partitions.

    >>> from medtorch.datasets import load
    >>> ds = load("seizure_vs_healthy")
    >>> split, audit = make(ds, method="random", seed=0)
    >>> audit["leakage_audit"]
    'not applicable: random split by rows'
    >>> make(ds, method="by_recording", seeds=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medtorch.errors.ConfigError: unknown config key 'split.seeds' in mt.splits.make; did you mean split.seed...
    """
    from medtorch.data.splits import describe_split, make_split

    known = list(SplitConfig.model_fields)
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join('split.' + c for c in close)}?" if close else (
                f"known: {', '.join(known)}")  # fmt: skip
            raise ConfigError(f"unknown config key {'split.' + key!r} in mt.splits.make; {hint}")
    try:
        cfg = SplitConfig.model_validate({"method": method, **settings})
    except ValidationError as err:
        raise _explain(err, "mt.splits.make") from None
    if not isinstance(ds, ArrayDataset):
        raise ConfigError(fmt("an ArrayDataset (mt.datasets.load)", type(ds).__name__,
                              "mt.splits.make(ds)", "load the data with mt.datasets.load"))  # fmt: skip
    split = make_split(ds, cfg)
    return split, describe_split(ds, split, cfg)

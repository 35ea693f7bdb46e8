"""Binary classification from an svmlight file (the CSE6250 lab's patients.svmlight).

Each row is one patient, so the row index is the patient id (the group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.sources.svmlight import read_svmlight
from medtorch.data.tasks.registry import PredictInput, TaskExample, register_task, source_path


def read_svmlight_input(path: Path, hints: Any, params: Any = None) -> PredictInput:
    """The ``reader`` of svmlight tasks: a file of the run's width (``n_inputs``), with the
    run's index convention (``task.params.zero_based``)."""
    zero_based = bool(dict(params or {}).get("zero_based", False))
    xs, y = read_svmlight(path, n_features=int(hints["n_inputs"]), zero_based=zero_based)
    x = np.asarray(xs.todense(), dtype=np.float32)
    return PredictInput({"x": x}, [str(i) for i in range(len(x))], [str(int(v)) for v in y])


def write_example(folder: Path) -> dict[str, str]:
    """A tiny svmlight file (40 rows, 6 features; the format has no unlabelled rows)."""
    rng = np.random.default_rng(0)
    lines = [f"{k % 2} " + " ".join(f"{j}:{rng.random():.3f}" for j in range(1, 7))
             for k in range(40)]  # fmt: skip
    path = folder / "tiny.svmlight"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path)}


@register_task(
    "svmlight_binary",
    inputs={"x": "features"},
    reader=read_svmlight_input,
    example=TaskExample(write_example, unlabelled=0),
)
def svmlight_binary(
    data_dir: Path | None,
    path: str | None = None,
    file: str = "cse6250_course/patients.svmlight.gz",
    zero_based: bool = False,
) -> ArrayDataset:
    """Binary label from an svmlight file; features as a dense float32 (N, F) matrix.

    ``zero_based``: the file numbers features from 0 (default: from 1, the svmlight
    convention); kept in the run's config, so ``medtorch predict`` reads files the same way.
    """
    src = source_path(data_dir, path, file)
    X, y = read_svmlight(src, zero_based=zero_based)
    names = ["negative", "positive"]
    counts = np.bincount(y, minlength=2)
    ids = np.array([f"row{i}" for i in range(len(y))])
    return ArrayDataset(
        inputs={"x": np.asarray(X.toarray(), dtype=np.float32)},  # (N, F); 836 x 3179 is small
        y=y,
        groups=ids,
        class_names=names,
        sample_ids=ids,
        meta={
            "source": str(src),
            "dataset": None if path is not None else Path(file).parts[0],
            "group_unit": "patient",
            "label_source": "svmlight label 1 = positive (the lab's target), 0 (or -1) = negative",
            "n_features": int(X.shape[1]),
            "zero_based": bool(zero_based),
            "cohort": {
                "rows_read": len(y),
                "rows_dropped": {},
                "class_counts": {n: int(c) for n, c in zip(names, counts)},
            },
        },
    )

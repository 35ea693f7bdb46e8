"""Seizure tasks on the UCI Epileptic Seizure Recognition data (one-second EEG chunks).

Groups are the 500 source recordings: the 23 chunks of a recording are not independent,
so ``split: by_recording`` keeps them on one side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.paths import data_dir_was_given
from medtorch.data.sources.signal_csv import read_signal_csv_input
from medtorch.data.sources.uci_seizure import (
    N_SAMPLES,
    SFREQ_HZ,
    bundled_file,
    read_uci_seizure_rows,
)
from medtorch.data.tasks.registry import TaskExample, register_task
from medtorch.errors import DataError

CLASS_NAMES_5 = ["seizure", "tumour_area", "healthy_area", "eyes_closed", "eyes_open"]
_FILE = Path("uci_epileptic_seizure") / "data.csv.gz"


def resolve_source(data_dir: Path | None, path: str | Path | None) -> tuple[Path, str]:
    """The UCI file a seizure task reads and how the run names its source: ``path``, else
    the data folder's copy, else the bundled one."""
    if path is not None:
        return Path(path), str(path)
    if data_dir is not None and (Path(data_dir) / _FILE).is_file():
        return Path(data_dir) / _FILE, str(Path(data_dir) / _FILE)
    if data_dir_was_given(data_dir):  # a named folder without the file: never the bundled copy
        raise DataError(
            f"expected {_FILE} in the data folder, got no such file in {data_dir}; run "
            "`medtorch data fetch uci_epileptic_seizure`, point --data-dir / MEDTORCH_DATA / "
            "data.data_dir at a folder holding it, or set none of them for the bundled copy"
        )
    return bundled_file(), "bundled: medtorch/data/bundled/uci_epileptic_seizure.csv.gz"


def _dataset(data_dir: Path | None, path: str | Path | None, binary: bool) -> ArrayDataset:
    file, source = resolve_source(data_dir, path)
    X, y_raw, ids, recording, _, unlabelled = read_uci_seizure_rows(file)
    if binary:
        y, names = (y_raw == 1).astype(np.int64), ["non_seizure", "seizure"]
    else:
        y, names = y_raw - 1, list(CLASS_NAMES_5)
    counts = np.bincount(y, minlength=len(names))
    return ArrayDataset(
        inputs={"x": X[:, None, :]},  # (N, 1, 178): one EEG channel
        y=y,
        groups=recording,
        class_names=names,
        sample_ids=ids,
        meta={
            "source": source,
            "dataset": None if path is not None else "uci_epileptic_seizure",
            "sfreq_hz": SFREQ_HZ,
            "group_unit": "recording",
            "label_source": "UCI y (1 seizure, 2 tumour area, 3 healthy area, 4 eyes closed, "
            "5 eyes open)" + ("; seizure = y==1" if binary else "; class = y-1"),
            "cohort": {
                "rows_read": len(y) + unlabelled,
                "rows_dropped": {"no label (empty y)": unlabelled} if unlabelled else {},
                "class_counts": {n: int(c) for n, c in zip(names, counts)},
                "n_groups": len(np.unique(recording)),
            },
        },
    )


def write_example(folder: Path) -> dict[str, str]:
    """A tiny UCI-format file (3 recordings x 2 chunks of each class, one unlabelled row)
    for the generic task tests; returns the task params that read it."""
    rng = np.random.default_rng(0)
    lines = [",".join(['""', *[f'"X{i}"' for i in range(1, N_SAMPLES + 1)], '"y"'])]
    for k in range(30):
        values = ",".join(str(int(v)) for v in rng.integers(-200, 200, N_SAMPLES))
        lines.append(f'"X{k % 2 + 1}.V1.{k // 2}",{values},{k % 5 + 1}')
    lines.append(f'"X9.V1.99",{",".join(["0"] * N_SAMPLES)},')  # no label
    path = folder / "uci_tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return {"path": str(path)}


_DECLARED = {
    "inputs": {"x": "signal"},
    "reader": read_signal_csv_input,
    "example": TaskExample(write_example, unlabelled=1),
}


@register_task("seizure_5class", **_DECLARED)  # type: ignore[arg-type]
def seizure_5class(data_dir: Path | None = None, path: str | None = None) -> ArrayDataset:
    """UCI seizure, 5 classes (seizure, tumour area, healthy area, eyes closed, eyes open)."""
    return _dataset(data_dir, path, binary=False)


@register_task("seizure_binary", **_DECLARED)  # type: ignore[arg-type]
def seizure_binary(data_dir: Path | None = None, path: str | None = None) -> ArrayDataset:
    """UCI seizure, seizure (y=1) vs all other classes."""
    return _dataset(data_dir, path, binary=True)

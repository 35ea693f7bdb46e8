"""Seizure vs seizure-free EEG from the same patients' healthy brain areas (UCI seizure).

The clinically sharper question inside the UCI data: of the Bonn recordings taken
intracranially from epilepsy patients, is a one-second chunk ictal (class 1, seizure) or
from the hippocampal formation of the opposite, healthy hemisphere between seizures
(class 3, "healthy area")? The scalp recordings of healthy volunteers (classes 4, 5) and
the tumour-area chunks (class 2) are left out and counted in the cohort. Chunks of one
recording stay together under ``split: by_recording``.

This file is the whole task: its reader, its declaration and its example fixture reuse
the seizure task module's pieces, and the recipe ``seizure_vs_healthy`` trains it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medtorch.data.dataset import ArrayDataset
from medtorch.data.sources.signal_csv import read_signal_csv_input
from medtorch.data.sources.uci_seizure import SFREQ_HZ, read_uci_seizure_rows
from medtorch.data.tasks.registry import TaskExample, register_task
from medtorch.data.tasks.seizure import CLASS_NAMES_5, resolve_source, write_example

KEEP = {1: 1, 3: 0}  # UCI y -> class index: seizure 1, healthy area 0
NAMES = ["healthy_area", "seizure"]


@register_task(
    "seizure_vs_healthy",
    inputs={"x": "signal"},
    reader=read_signal_csv_input,
    example=TaskExample(write_example, unlabelled=1),
)
def seizure_vs_healthy(data_dir: Path | None = None, path: str | None = None) -> ArrayDataset:
    """UCI seizure, ictal (y=1) vs the healthy hemisphere between seizures (y=3)."""
    file, source = resolve_source(data_dir, path)
    X, y_raw, ids, recording, _, unlabelled = read_uci_seizure_rows(file)
    keep = np.isin(y_raw, list(KEEP))
    dropped = {f"class {CLASS_NAMES_5[c - 1]} (not in this task)": int((y_raw == c).sum())
               for c in (2, 4, 5) if (y_raw == c).any()}  # fmt: skip
    if unlabelled:
        dropped["no label (empty y)"] = unlabelled
    y = np.array([KEEP[int(v)] for v in y_raw[keep]], dtype=np.int64)
    counts = np.bincount(y, minlength=2)
    return ArrayDataset(
        inputs={"x": X[keep][:, None, :]},  # (N, 1, 178): one EEG channel
        y=y,
        groups=recording[keep],
        class_names=list(NAMES),
        sample_ids=ids[keep],
        meta={
            "source": source,
            "dataset": "uci_epileptic_seizure",
            "sfreq_hz": SFREQ_HZ,
            "group_unit": "recording",
            "label_source": "UCI y: 1 seizure -> seizure, 3 healthy area -> healthy_area; "
            "2, 4, 5 left out",
            "cohort": {
                "rows_read": len(y_raw) + unlabelled,
                "rows_dropped": dropped,
                "class_counts": {n: int(c) for n, c in zip(NAMES, counts)},
                "n_groups": len(np.unique(recording[keep])),
            },
        },
    )

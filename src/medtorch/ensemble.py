"""Several finished runs of one recipe scored as one model, from their saved predictions.

Every run folder keeps its validation and test probabilities (``predictions_valid.csv``,
``predictions_test.csv``). :func:`score_ensemble` averages them sample by sample (the mean
probability, as ``medtorch predict --ensemble`` averages the networks themselves) and scores
the average with the task's own metric families on the same split, so an ensemble is
chosen on validation and reported on test with the members' CIs (whole groups resampled
when the split is grouped). Nothing is retrained or re-run.

    medtorch ensemble RUN_A RUN_B [RUN_C ...] --out DIR
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.errors import ConfigError, MedtorchError

PARTS = ("valid", "test")


def read_probabilities(path: Path, class_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(sample ids as written, probabilities in ``class_names`` order) of a predictions CSV."""
    if not path.is_file():
        raise MedtorchError(
            f"expected {path.name} in the run folder, got no such file in {path.parent}; "
            "runs trained before validation predictions were kept need training again"
        )
    cols = [f"p_{c}" for c in class_names]
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ["sample_id", *cols] if c not in (reader.fieldnames or [])]
        if missing:
            raise MedtorchError(
                f"expected the columns sample_id and {', '.join(cols)}, got no {missing[0]!r} "
                f"in {path}; pass run folders of the same task"
            )
        rows = list(reader)
    try:
        proba = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise MedtorchError(
            f"expected numbers in the p_* columns, got {exc} in {path}; train the run again"
        ) from None
    return [r["sample_id"] for r in rows], proba.reshape(len(rows), len(cols))


def _check_members(run_dirs: list[Path]) -> Any:
    """The first run's config, once every run is known to share its task and split."""
    from medtorch.pipeline import load_run

    if len(run_dirs) < 2:
        raise ConfigError(
            f"expected at least 2 run folders, got {len(run_dirs)} in `medtorch ensemble`; "
            "pass the runs to average (e.g. seeds of one recipe)"
        )
    if len({p.resolve() for p in run_dirs}) != len(run_dirs):
        raise ConfigError(
            "expected distinct run folders, got one twice in `medtorch ensemble`; "
            "a run passed twice would weigh double"
        )
    cfg, spec = load_run(run_dirs[0])
    for other in run_dirs[1:]:
        ocfg, ospec = load_run(other)
        for what, a, b in (
            ("task", cfg.task, ocfg.task),
            ("split", cfg.split, ocfg.split),
            ("classes", spec["class_names"], ospec["class_names"]),
        ):
            if a != b:
                raise ConfigError(
                    f"expected runs with the {what} of {run_dirs[0]}, got a different one in "
                    f"{other}; ensemble runs of one task on one split (e.g. seeds of a recipe)"
                )
    return cfg, list(spec["class_names"])


def score_ensemble(
    run_dirs: Sequence[str | Path], out: str | Path, data_dir: str | Path | None = None
) -> dict[str, Any]:
    """Average the runs' saved validation and test probabilities and score the average.

    Writes ``out/metrics.json`` (``valid`` and ``test`` as in a run's metrics.json, plus the
    members) and ``out/predictions_{valid,test}.csv``; returns the metrics. The data are
    read again (as ``medtorch evaluate`` does) for the labels, groups and metadata, and
    each run's sample ids must be those of the split the data give now.
    """
    from medtorch.pipeline import _json, _predictions_csv, prepare, score, task_data_dir
    from medtorch.run_folder import run_source

    runs = [Path(r) for r in run_dirs]
    cfg, class_names = _check_members(runs)
    bundled = run_source(runs[0]).startswith("bundled")
    prep = prepare(cfg, task_data_dir(cfg, data_dir, bundled))
    means = {}  # every file is read and checked before anything is written
    for part in PARTS:
        ds = prep.parts[part]
        want = [str(s) for s in (ds.sample_ids if ds.sample_ids is not None else [])]
        probas = []
        for run in runs:
            path = run / f"predictions_{part}.csv"
            ids, proba = read_probabilities(path, class_names)
            if ids != want:
                row = next((i for i, (a, b) in enumerate(zip(ids, want)) if a != b), None)
                where = f"row {row + 2} holds {ids[row]!r}" if row is not None else "a row count"
                raise MedtorchError(
                    f"expected the {len(want)} {part} samples of the split the data give now, "
                    f"got {len(ids)} ({where}) in {path}; check that the data files have not "
                    "changed (medtorch data verify)"
                )
            probas.append(proba)
        mean = np.mean(probas, axis=0)
        if not ds.multilabel:  # the CSVs keep 6 digits: rows sum to 1 within 1e-5
            mean /= mean.sum(axis=1, keepdims=True)
        means[part] = mean
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {
        "ensemble": [{"run": r.name, "path": str(r)} for r in runs],
        "combination": "mean of the members' class probabilities",
        "leakage_note": prep.split_info.get("leakage_note"),
    }
    for part, mean in means.items():
        metrics[part] = score(cfg, prep.parts[part], mean)
        _predictions_csv(out / f"predictions_{part}.csv", prep.parts[part], mean)
    metrics["scored_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _json(out / "metrics.json", metrics)
    return metrics

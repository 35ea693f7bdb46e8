"""``medtorch predict RUN_DIR INPUT --out FILE`` for every kind of run.

Signals come as a CSV with the training columns (``X1..X<T>``, an optional id column and an
optional ``y``), feature vectors as svmlight, ECG as a WFDB record path. The run's own
normaliser (fitted on its training part) is applied before the model.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.errors import ConfigError, DataError, fmt
from medtorch.pipeline import load_normalizer, restore_model

ECG_TASKS = ("mitdb_aami_beats", "mitdb_af_windows")


def read_signal_csv(path: Path, n_times: int) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Read a CSV of fixed-length signals: columns X1..X<n_times>, optional id and y.

    Returns (x (N, 1, T) float32, ids, labels or None).
    """
    if not path.is_file():
        raise DataError(f"expected a CSV file, got {str(path)!r} (no such file); check the path")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(
                f"expected a header row, got an empty file in {path}; "
                "write a header with X1..X{n_times}"
            ) from None
        rows = list(reader)
    want = [f"X{i}" for i in range(1, n_times + 1)]
    missing = [c for c in want if c not in header]
    if missing:
        raise DataError(
            f"expected columns X1..X{n_times}, got {len(want) - len(missing)} of them "
            f"(first missing {missing[0]!r}) in {path}; the run was trained on {n_times} samples per row"
        )
    cols = [header.index(c) for c in want]
    id_col = 0 if header[0] not in want and header[0] != "y" else None
    y_col = header.index("y") if "y" in header else None
    x = np.empty((len(rows), n_times), dtype=np.float32)
    for r, row in enumerate(rows):
        try:
            x[r] = [float(row[c]) for c in cols]
        except (ValueError, IndexError):
            raise DataError(
                f"expected {n_times} numeric values, got a short or non-numeric row {r + 2} in {path}; "
                "fix or drop that row"
            ) from None
    if not np.isfinite(x).all():
        bad = int(np.where(~np.isfinite(x).all(1))[0][0])
        raise DataError(
            f"expected finite values, got NaN/inf in row {bad + 2} of {path}; fix or drop that row"
        )
    ids = (
        [row[id_col] for row in rows] if id_col is not None else [str(i) for i in range(len(rows))]
    )
    labels = [row[y_col] for row in rows] if y_col is not None else None
    return x[:, None, :], ids, labels


def _proba(
    model: torch.nn.Module, inputs: list[np.ndarray], batch: int = 4096, tta: bool = False
) -> np.ndarray:
    """Softmax probabilities in batches; ``tta`` averages signal views as the trainer does."""
    views = [inputs[0]]
    if tta and inputs[0].ndim == 3:
        x = inputs[0]
        views = [x, x[..., ::-1].copy(), -x, -x[..., ::-1].copy()]
    total = None
    for view in views:
        out = []
        with torch.inference_mode():
            for i in range(0, len(view), batch):
                chunk = [torch.as_tensor(a[i : i + batch]) for a in (view, *inputs[1:])]
                out.append(torch.softmax(model(*chunk).double(), 1).numpy())
        p = np.concatenate(out) if out else np.zeros((0, 0))
        total = p if total is None else total + p
    assert total is not None
    return total / len(views)


class ProbabilityEnsemble(torch.nn.Module):
    """Several trained models as one: returns the log of their mean softmax probabilities.

    A softmax of the output is then the mean probability, so every caller that applies a
    softmax to a model's logits (predict, TTA, the ECG predictors) averages the members.
    """

    def __init__(self, models: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(models)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        p = torch.stack([torch.softmax(m(*inputs).double(), dim=1) for m in self.members])
        return torch.log(p.mean(dim=0).clamp_min(1e-300))


def restore_ensemble(run_dirs: list[Path]) -> tuple[Any, dict[str, Any], torch.nn.Module]:
    """Restore one run, or several runs of the same task and inputs as a ProbabilityEnsemble.

    The runs must agree on the task, its parameters, the classes and the input normaliser
    (seeds of one recipe do), since every member sees the same normalised inputs.
    """
    cfg, spec, model = restore_model(run_dirs[0])
    if len(run_dirs) == 1:
        return cfg, spec, model
    ref_norm = (Path(run_dirs[0]) / "normalizer.json").read_text()
    models = [model]
    for other in run_dirs[1:]:
        ocfg, ospec, omodel = restore_model(other)
        same = (ocfg.task == cfg.task and ospec["class_names"] == spec["class_names"]
                and (Path(other) / "normalizer.json").read_text() == ref_norm)  # fmt: skip
        if not same:
            raise ConfigError(
                f"expected --ensemble runs with the task, classes and normaliser of "
                f"{run_dirs[0]}, got a different one in {other}; ensemble seeds of one recipe"
            )
        models.append(omodel)
    ens = ProbabilityEnsemble(models)
    ens.eval()
    return cfg, spec, ens


def predict_to_csv(
    run_dir: Path,
    input_path: Path,
    out: Path,
    af_run: Path | None = None,
    ensemble: list[Path] | None = None,
    lead: str | None = None,
    detector: str = "gqrs",
) -> str:
    """Predict ``input_path`` with the run's best checkpoint; write a CSV; return a summary line.

    ``af_run``: an AF-window run used beside a heartbeat run on a WFDB record, so one call
    writes the beats and the AF episodes. ``ensemble``: more runs of the same recipe whose
    probabilities are averaged with this one's (:class:`ProbabilityEnsemble`). ``lead``:
    for a WFDB record, the lead to read instead of the run's; ``detector``: its QRS detector
    where it has no beat annotations.
    """
    cfg, spec, model = restore_ensemble([Path(run_dir), *(ensemble or [])])
    norm = load_normalizer(run_dir)
    classes = spec["class_names"]
    if lead is not None and cfg.task.name not in ECG_TASKS:
        raise ConfigError(fmt("an ECG run with --lead", cfg.task.name, "--lead",
                              "drop --lead; it picks a WFDB record's lead"))  # fmt: skip
    af = None
    if af_run is not None:
        if cfg.task.name != "mitdb_aami_beats":
            raise ConfigError(
                f"expected a heartbeat run (task mitdb_aami_beats) with --af-run, got task "
                f"{cfg.task.name!r} in {run_dir}; pass the AF run alone or a beat run first"
            )
        af_cfg, _, af_model = restore_model(af_run)
        if af_cfg.task.name != "mitdb_af_windows":
            raise ConfigError(
                f"expected an AF run (task mitdb_af_windows) in --af-run, got task "
                f"{af_cfg.task.name!r} in {af_run}; train one with recipe mitdb_af_rr_mlp"
            )
        af = (af_cfg, af_model, load_normalizer(af_run))
    if cfg.task.name in ECG_TASKS:
        from medtorch.ecg.predict import predict_record_to_csv

        return predict_record_to_csv(cfg, model, norm, classes, input_path, out, af, lead,
                                     detector)  # fmt: skip
    if cfg.task.name.startswith("svmlight"):
        from medtorch.data.sources.svmlight import read_svmlight

        xs, y = read_svmlight(input_path, n_features=spec["hints"]["n_inputs"])
        x = np.asarray(xs.todense(), dtype=np.float32)
        ids = [str(i) for i in range(len(x))]
        labels: list[str] | None = [str(int(v)) for v in y]
    elif "image_size" in spec["hints"]:  # an image run: an image file or a folder of them
        from medtorch.data.tasks.images import read_image_inputs

        x, ids = read_image_inputs(Path(input_path), spec["hints"]["image_size"])
        labels = None
    else:
        x, ids, labels = read_signal_csv(Path(input_path), spec["hints"]["n_times"])
    proba = _proba(model, [norm.transform(x)], tta=cfg.eval.tta)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["sample_id", "predicted", *[f"p_{c}" for c in classes], *(["y"] if labels else [])]
        )
        for i, p in enumerate(proba):
            w.writerow(
                [
                    ids[i],
                    classes[int(p.argmax())],
                    *[f"{v:.6g}" for v in p],
                    *([labels[i]] if labels else []),
                ]
            )
    return f"wrote {len(proba)} predictions to {out}"

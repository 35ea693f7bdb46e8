"""``medtorch predict RUN_DIR INPUT --out FILE`` for every kind of run.

The run's task declares how a new input is read (``register_task(reader=...)``: e.g.
:func:`medtorch.data.sources.signal_csv.read_signal_csv_input` for a CSV of fixed-length signals) or predicts it itself
(``predictor=``). The run's own encoder (fitted on its training part) is applied before the
model. ``medtorch explain RUN_DIR INPUT --out DIR`` reads its inputs the same way and draws
the attribution map of each (:func:`explain_inputs`, with the methods of
:mod:`medtorch.explain`).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtorch.data.tasks.registry import PredictInput, get_task
from medtorch.errors import ConfigError, fmt
from medtorch.pipeline import load_encoder, restore_model
from medtorch.train.evaluation import batch_rows
from medtorch.train.inputs import resolve_kinds, tta_views


def _proba(
    model: torch.nn.Module,
    inputs: list[np.ndarray],
    batch: int = 4096,
    tta: bool = False,
    multilabel: bool = False,
    kinds: list[str] | None = None,
) -> np.ndarray:
    """Softmax probabilities (``multilabel``: a sigmoid per label) in batches (capped by
    :func:`~medtorch.train.evaluation.batch_rows` for large samples); ``tta`` averages the
    views the trainer averages (:func:`~medtorch.train.inputs.tta_views`: a signal's 4, an
    image's 8) over the inputs' ``kinds`` (None: derived from the first input's rank)."""
    if kinds is None:
        kinds = list(resolve_kinds(None, {f"input{i}": a for i, a in enumerate(inputs)}).values())
    xs = [torch.as_tensor(np.asarray(a)) for a in inputs]
    views = tta_views(xs, kinds) if tta else iter([xs])
    rows = batch_rows(batch, xs[0]) if xs and len(xs[0]) else batch
    total, n_views = None, 0
    for view in views:
        n_views += 1
        out = []
        with torch.inference_mode():
            for i in range(0, len(view[0]), rows):
                logits = model(*[a[i : i + rows] for a in view]).double()
                prob = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
                out.append(prob.numpy())
        p = np.concatenate(out) if out else np.zeros((0, 0))
        total = p if total is None else total + p
    assert total is not None
    return total / n_views


def _run_kinds(spec: dict[str, Any], inputs: list[np.ndarray]) -> list[str] | None:
    """The run's input kinds in the model's input order (model.json), None for older runs."""
    declared = spec.get("input_kinds")
    if not declared:
        return None
    return list(resolve_kinds(declared, dict(zip(spec["inputs"], inputs, strict=True))).values())


def _log_mean_softmax(logits: list[torch.Tensor]) -> torch.Tensor:
    """The log of the members' mean class probabilities (classes on dim 1)."""
    p = torch.stack([torch.softmax(x.double(), dim=1) for x in logits])
    return torch.log(p.mean(dim=0).clamp_min(1e-300))


class ProbabilityEnsemble(torch.nn.Module):
    """Several trained models as one: returns the log of their mean softmax probabilities.

    A softmax of the output is then the mean probability, so every caller that applies a
    softmax to a model's logits (predict, TTA, the tasks' own predictors) averages the members.
    """

    def __init__(self, models: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(models)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return _log_mean_softmax([m(*inputs) for m in self.members])


class SegmentEnsemble(ProbabilityEnsemble):
    """An ensemble of per-segment models (``hannun_segments``): the strip output as
    :class:`ProbabilityEnsemble`, and ``segments`` the log of the members' mean per-segment
    probabilities, so ``medtorch predict --ensemble`` keeps every segment's label over time."""

    def __init__(self, models: list[torch.nn.Module]) -> None:
        super().__init__(models)
        for attr in ("segment_samples", "receptive_field"):
            values = {getattr(m, attr, None) for m in models}
            if len(values) != 1:
                raise ConfigError(
                    f"expected --ensemble runs whose networks share {attr}, got {sorted(map(str, values))}; "
                    "ensemble seeds of one recipe"
                )
            setattr(self, attr, values.pop())

    def segments(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.segments(*inputs) for m in self.members]  # type: ignore[operator]
        return _log_mean_softmax([logits for logits, _ in outs]), outs[0][1]


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
    per_segment = all(callable(getattr(m, "segments", None)) for m in models)
    ens = SegmentEnsemble(models) if per_segment else ProbabilityEnsemble(models)
    ens.eval()
    return cfg, spec, ens


def read_new_inputs(
    run_dir: Path, cfg: Any, spec: dict[str, Any], task: Any, input_path: Path
) -> tuple[PredictInput, list[np.ndarray]]:
    """A new input file read by the run's task's ``reader`` and encoded with the run's own
    encoder: (what the reader returned, the model's inputs in order)."""
    assert task.reader is not None
    encoder = load_encoder(run_dir, cfg)
    read = task.reader(Path(input_path), spec["hints"], dict(cfg.task.params))
    inputs = encoder.transform(read.inputs)
    return read, [inputs[n] for n in spec["inputs"]]


def predict_to_csv(
    run_dir: Path,
    input_path: Path,
    out: Path,
    ensemble: list[Path] | None = None,
    **options: Any,
) -> str:
    """Predict ``input_path`` with the run's best checkpoint; write a CSV; return a summary line.

    The run's task says how a new input is read (its ``reader``) or predicts it itself (its
    ``predictor``, e.g. a whole recording into events and episodes). ``ensemble``: more runs of
    the same recipe whose probabilities are averaged with this one's
    (:class:`ProbabilityEnsemble`). ``options`` (None = not given) go to the task's own
    predictor, which declares the ones it takes; any other is a one-line error.
    """
    cfg, spec, model = restore_ensemble([Path(run_dir), *(ensemble or [])])
    task = get_task(cfg.task.name)
    for key, value in options.items():
        if value is not None and key not in task.options:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(fmt(f"a run whose task takes {flag}", cfg.task.name, flag,
                                  f"drop {flag}; task {cfg.task.name!r} does not use it"))  # fmt: skip
    given = {k: v for k, v in options.items() if v is not None}
    if task.predictor is not None:
        return task.predictor(run_dir=Path(run_dir), cfg=cfg, spec=spec, model=model,
                              input_path=Path(input_path), out=Path(out), **given)  # fmt: skip
    if task.reader is None:
        raise ConfigError(fmt("a task that reads new inputs", cfg.task.name, str(run_dir),
                              "this task has no input reader for medtorch predict"))  # fmt: skip
    read, inputs = read_new_inputs(Path(run_dir), cfg, spec, task, Path(input_path))
    proba = _proba(model, inputs,
                   tta=cfg.eval.tta and task.tta(cfg.task.params),
                   multilabel=task.families(cfg.task.params)[0] == "multilabel",
                   kinds=_run_kinds(spec, inputs))  # fmt: skip
    classes = spec["class_names"]
    labels = read.labels
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["sample_id", "predicted", *[f"p_{c}" for c in classes], *(["y"] if labels else [])]
        )
        for i, p in enumerate(proba):
            w.writerow(
                [
                    read.ids[i],
                    classes[int(p.argmax())],
                    *[f"{v:.6g}" for v in p],
                    *([labels[i]] if labels else []),
                ]
            )
    return f"wrote {len(proba)} predictions to {out}"


# ---------------------------------------------------------------- medtorch explain


def _file_name(sample_id: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(sample_id)).stem) or "input"
    name, k = f"{stem}.png", 1
    while name in used:
        k += 1
        name = f"{stem}-{k}.png"
    used.add(name)
    return name


def explain_inputs(run_dir: Path, input_path: Path, out_dir: Path, limit: int = 64) -> str:
    """``medtorch explain``: read ``input_path`` as ``medtorch predict`` does (the run's
    task's reader and encoder), predict, and write one PNG per input (its map for the
    predicted class) and ``explanations.json`` (predicted class and probabilities per
    input) into ``out_dir``; return a summary line. At most ``limit`` inputs are explained
    (the first ones; the summary says how many were read)."""
    from medtorch.explain.core import attribute
    from medtorch.explain.registry import Panel, get_explainer

    if limit < 1:
        raise ConfigError(fmt("a positive number of inputs", limit, "--limit", "e.g. --limit 64"))
    cfg, spec, model = restore_model(Path(run_dir))
    task = get_task(cfg.task.name)
    kinds = spec.get("input_kinds") or task.kinds(cfg.task.params)
    kind = kinds["x"]
    explainer = get_explainer(kind)
    if explainer is None:
        raise ConfigError(fmt("a run whose main input has an attribution method", kind,
                              f"the input kinds of {run_dir}",
                              "attribution maps are drawn for the kinds medtorch.explain declares"))  # fmt: skip
    if task.reader is None:
        raise ConfigError(fmt("a task that reads new input files", cfg.task.name, str(run_dir),
                              "its report (report.html) shows the maps of test samples"))  # fmt: skip
    read, inputs = read_new_inputs(Path(run_dir), cfg, spec, task, Path(input_path))
    n_read = len(read.ids)
    rows = list(range(min(limit, n_read)))
    x_model = [np.asarray(a)[rows] for a in inputs]
    proba = _proba(model, x_model, multilabel=task.families(cfg.task.params)[0] == "multilabel")
    target = proba.argmax(1)
    maps = attribute(explainer, model, x_model, target)
    classes = list(spec["class_names"])
    shown = np.asarray(read.inputs["x"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    entries = []
    for i in rows:
        png = _file_name(read.ids[i], used)
        pred = classes[int(target[i])]
        title = f"{read.ids[i]}\npredicted {pred} ({proba[i, target[i]]:.2f})"
        explainer.draw([Panel(shown[i], maps[i], title)], out_dir / png)
        entries.append({"id": str(read.ids[i]), "predicted": pred,
                        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, proba[i])},
                        "figure": png})  # fmt: skip
    doc = {"run": str(run_dir), "method": explainer.method, "note": explainer.note,
           "inputs": entries}  # fmt: skip
    (out_dir / "explanations.json").write_text(json.dumps(doc, indent=1) + "\n")
    more = f" (the first {len(rows)} of {n_read} read; --limit)" if n_read > len(rows) else ""
    return f"wrote {len(rows)} attribution maps and explanations.json to {out_dir}{more}"

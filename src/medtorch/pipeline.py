"""One run, end to end: recipe -> task -> split -> normalise -> model -> trainer -> metrics -> report.

Every stage writes what it did into the run folder, so a run can be audited and
resumed from the folder alone:

    config.yaml  cohort.json  splits.json  normalizer.json  model.json
    history.csv  checkpoints/{best,last}.pt  metrics.json  predictions_{valid,test}.csv
    *.png  report.html
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medtorch.config import RunConfig, dump_config, load_config
from medtorch.data.dataset import ArrayDataset
from medtorch.data.paths import resolve_data_dir
from medtorch.data.preprocess import Normalizer, NormalizerEncoder
from medtorch.data.splits import describe_split, make_split, write_split
from medtorch.data.tasks.registry import Encoder, EncoderType, Task, build_task, get_task
from medtorch.errors import ConfigError, MedtorchError
from medtorch.models.registry import AfterFit, Explains, get_entry
from medtorch.models.shapes import build_model, shape_hints
from medtorch.run_folder import read_json, read_normalizer, run_source, saved_test_ids

log = logging.getLogger("medtorch")


@dataclass
class Prepared:
    """A task's dataset split into partitions and encoded with train-only statistics."""

    dataset: ArrayDataset
    parts: dict[str, ArrayDataset]
    split_info: dict[str, Any]
    encoder: Encoder
    task: Task
    kinds: dict[str, str]  # each input's kind, for this run's task params
    index: dict[str, np.ndarray] = field(default_factory=dict)  # each partition's rows of dataset

    def raw(self, part: str, name: str = "x") -> np.ndarray | None:
        """The input ``name`` of partition ``part`` before encoding (None where the encoder
        makes it from other raw inputs)."""
        arr = self.dataset.inputs.get(name)
        rows = self.index.get(part)
        if (
            arr is None
            or rows is None
            or np.asarray(arr).shape[1:] != self.parts[part].inputs[name].shape[1:]
        ):
            return None
        return np.asarray(arr)[rows]

    @property
    def normalizer(self) -> Normalizer:
        """The input normaliser (tasks whose encoder is the ``preprocess.normalize`` one)."""
        assert isinstance(self.encoder, NormalizerEncoder)
        return self.encoder.norm


def _json(path: Path, obj: Any) -> None:
    from medtorch.train.atomic import write_text

    write_text(path, json.dumps(obj, indent=2, default=_to_builtin))  # atomic: never half a file


def _to_builtin(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def new_run_dir(out: Path, name: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = out / f"{name}-{stamp}"
    k = 1
    while run_dir.exists():
        k += 1
        run_dir = out / f"{name}-{stamp}-{k}"
    run_dir.mkdir(parents=True)
    return run_dir


def task_data_dir(
    cfg: RunConfig, data_dir: str | Path | None, bundled: bool = False
) -> Path | None:
    """The data folder a task reads from; None means the task's bundled copy (demo)."""
    if bundled:
        return None
    return resolve_data_dir(cfg.data.data_dir or (str(data_dir) if data_dir else None))


def encoder_type(task: Task) -> EncoderType:
    """The task's input encoder; the ``preprocess.normalize`` normaliser unless it names one."""
    return task.encoder if task.encoder is not None else NormalizerEncoder


def check_task_settings(cfg: RunConfig, task: Task) -> None:
    """Settings that the task's inputs cannot take: augmentations of another kind of input,
    test-time views of an input that has none. One line naming the key."""
    allowed = task.valid_augment(cfg.task.params)
    aug = cfg.trainer.augment
    on = [k for k in type(aug).model_fields if getattr(aug, k)]
    if bad := [k for k in on if k not in allowed]:
        raise ConfigError(
            f"expected augmentations of {task.name!r}'s inputs ({', '.join(sorted(allowed)) or 'none'}), "
            f"got {bad[0]!r} in trainer.augment.{bad[0]}; remove it"
        )
    if cfg.eval.tta and not task.tta(cfg.task.params):
        raise ConfigError(
            f"expected eval.tta false for task {task.name!r} (its main input, of kind "
            f"{task.kinds(cfg.task.params)['x']!r}, has no test-time views), got true in "
            "eval.tta; set it to false"
        )


def prepare(cfg: RunConfig, data_dir: Path | None) -> Prepared:
    """Build the task's samples, split them, audit leakage, fit the encoder on train only."""
    task = get_task(cfg.task.name)
    check_task_settings(cfg, task)
    ds = build_task(cfg.task.name, data_dir, cfg.task.params)
    reads = ds.meta.get("dataset")  # None: the task read a file given by task.params.path
    if reads is not None and reads != cfg.data.dataset:
        raise ConfigError(
            f"expected data.dataset {reads!r} (what task {cfg.task.name!r} reads), got "
            f"{cfg.data.dataset!r} in data.dataset; the task picks the data: set data.dataset "
            f"to {reads} or choose a task for {cfg.data.dataset}"
        )
    split = make_split(ds, cfg.split)
    info = describe_split(ds, split, cfg.split)
    encoder = encoder_type(task).fit(ds, split["train"], cfg.preprocess.model_dump())
    if (relabel := getattr(encoder, "relabel", None)) is not None:
        ds = relabel(ds)  # an encoder that fits the label space on train too re-indexes y
    parts = {}
    kinds = task.kinds(cfg.task.params)
    for name, idx in split.items():
        part = ds.subset(idx)
        part.inputs = encoder.transform(part.inputs)
        if list(part.inputs) != list(kinds):
            raise ConfigError(
                f"expected encoded inputs {list(kinds)} (as task {task.name!r} declares), got "
                f"{list(part.inputs)} from its encoder; fix the task's declaration"
            )
        parts[name] = part
    return Prepared(ds, parts, info, encoder, task, dict(task.kinds(cfg.task.params)),
                    {k: np.asarray(v) for k, v in split.items()})  # fmt: skip


def _predictions_csv(path: Path, ds: ArrayDataset, proba: np.ndarray) -> None:
    """One row per sample: id, group, the label and the prediction (multi-label: the true
    labels and those at P >= 0.5, joined by ``|``), then a probability per class."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "group", "y_true", "y_pred", *[f"p_{c}" for c in ds.class_names]])
        assert ds.sample_ids is not None
        names = np.asarray(ds.class_names)
        for sid, g, yt, p in zip(ds.sample_ids, ds.groups, ds.y, proba):
            if ds.multilabel:
                true, pred = "|".join(names[yt > 0.5]), "|".join(names[p >= 0.5])
            else:
                true, pred = str(int(yt)), str(int(p.argmax()))
            w.writerow([sid, g, true, pred, *[f"{v:.6g}" for v in p]])


def score(cfg: RunConfig, ds: ArrayDataset, proba: np.ndarray) -> dict[str, Any]:
    """The task's metric families with bootstrap CIs; whole groups are resampled when the
    split is grouped."""
    from medtorch.metrics.families import ScoreArgs, score_families

    groups = ds.groups if cfg.split.grouped or cfg.split.method == "protocol" else None
    args = ScoreArgs(ds.y, proba, list(ds.class_names), ds.meta, groups,
                     cfg.eval.n_bootstrap, cfg.eval.ci_level, cfg.eval.seed)  # fmt: skip
    return score_families(get_task(cfg.task.name).families(cfg.task.params), args)


def objective(ds: ArrayDataset) -> str:
    """The trainer's objective for a dataset's labels: multilabel for a 0/1 label matrix."""
    return "multilabel" if ds.multilabel else "multiclass"


def _set_up(
    cfg: RunConfig, run_dir: Path, ddir: Path | None, write: bool = True
) -> tuple[Prepared, Any, Any]:
    """Prepare the data, write the run's setup files (``write``: this process writes) and
    build the model and its trainer."""
    import torch

    from medtorch.train.trainer import Trainer

    if write:
        dump_config(cfg, run_dir / "config.yaml")
    prep = prepare(cfg, ddir)
    train = prep.parts["train"]
    hints = shape_hints(train, prep.kinds, prep.encoder)
    if write:
        write_split(run_dir / "splits.json", prep.split_info)
        _json(
            run_dir / "cohort.json",
            {
                **prep.dataset.meta.get("cohort", {}),
                "task": cfg.task.name,
                "source": prep.dataset.meta.get("source"),
                "group_unit": prep.dataset.meta.get("group_unit"),
            },
        )
        _json(run_dir / prep.encoder.filename, prep.encoder.to_dict())
        _json(
            run_dir / "model.json",
            {
                "name": cfg.model.name,
                "params": cfg.model.params,
                "hints": hints,
                "class_names": train.class_names,
                "inputs": list(train.inputs),
                "input_kinds": prep.kinds,
            },
        )
    if note := prep.split_info.get("leakage_note"):
        (log.info if prep.split_info.get("grouped") else log.warning)(note)
    torch.manual_seed(cfg.trainer.seed)  # the initial weights are part of the seeded run
    model = build_model(cfg.model.name, cfg.model.params, hints, train.n_classes)
    trainer = Trainer(model, cfg.optim, cfg.trainer, run_dir, train.class_names,
                      input_kinds=prep.kinds, objective=objective(train))  # fmt: skip
    return prep, model, trainer


def train_run(
    cfg: RunConfig,
    out: Path,
    data_dir: str | Path | None = None,
    *,
    resume_dir: Path | None = None,
    bundled: bool = False,
) -> Path:
    """Train one recipe and write a complete run folder; returns its path.

    Under ``torchrun`` every process calls this: all train (data parallel), rank 0 alone
    writes the folder and scores the run, the others return once training ends.
    """
    from medtorch.train import distributed

    t0 = time.perf_counter()
    info = distributed.setup(cfg.trainer.device)
    if resume_dir is not None:  # a run killed before its first checkpoint restarts
        run_dir = Path(resume_dir)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(
                f"expected a run folder with config.yaml, got {str(run_dir)!r} in --resume; "
                "pass a folder written by `medtorch train`"
            )
    else:  # one new folder, named by rank 0
        run_dir = Path(
            distributed.broadcast(str(new_run_dir(Path(out), cfg.name)) if info.main else "")
        )
    try:
        prep, model, trainer = _set_up(
            cfg, run_dir, task_data_dir(cfg, data_dir, bundled), write=info.main
        )
    except BaseException:
        # nothing trained yet: a new folder holds only what setup wrote, so it goes (a
        # resumed one keeps its checkpoints)
        if resume_dir is None and info.main:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    train, valid, test = prep.parts["train"], prep.parts["valid"], prep.parts["test"]
    try:
        trainer.fit(train, valid, resume=resume_dir is not None)
    except MedtorchError:
        # a bad setting found while training (a diverged loss): a new folder with no
        # checkpoint holds nothing to resume, so it goes
        if resume_dir is None and info.main and not (run_dir / "checkpoints" / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if not info.main:
        return run_dir
    stage2 = None
    if get_entry(cfg.model.name).after_fit:
        assert isinstance(model, AfterFit), f"{cfg.model.name} declares after_fit"
        on = {"train": train, "valid": valid}
        stage2 = fit_after_training(model, {k: on[k] for k in model.after_fit_on}, run_dir)
    fit_s = time.perf_counter() - t0 + trainer.prior_wall_s  # with a resumed run's earlier sessions

    metrics: dict[str, Any] = {
        "run": run_dir.name,
        "fit_wall_s": round(fit_s, 2),
        "best_epoch": trainer.best_epoch,
        "leakage_note": prep.split_info.get("leakage_note"),
    }
    if stage2 is not None:
        metrics["after_training"] = stage2
    for name, part in (("valid", valid), ("test", test)):
        proba = trainer.predict_proba(part, checkpoint="best", tta=cfg.eval.tta)
        metrics[name] = score(cfg, part, proba)
        # validation predictions too: ensembles and thresholds are chosen on them
        _predictions_csv(run_dir / f"predictions_{name}.csv", part, proba)
    _json(run_dir / "metrics.json", metrics)
    if isinstance(model, Explains):
        _, _, best = restore_model(run_dir)
        _json(run_dir / "explanations.json", explain_samples(best, test, prep.encoder, proba))
    write_attribution_maps(run_dir, prep, proba)
    write_task_figures(run_dir, cfg, prep, proba)
    from medtorch.report.html import write_report
    from medtorch.train.tracking import log_final

    log_final(cfg.trainer.loggers, run_dir, cfg.name, metrics)  # trainer.loggers, if any
    write_report(run_dir)
    return run_dir


def write_attribution_maps(run_dir: Path, prep: Prepared, proba: np.ndarray) -> None:
    """Attribution maps of example test samples (``attributions.json`` and figures) when
    the method of the main input's kind is declared (:mod:`medtorch.explain`); the
    report draws them. Cheap: a few samples per class, one batch on the CPU."""
    from medtorch.explain import get_explainer, write_attributions

    if get_explainer(prep.kinds["x"]) is None:
        return
    test = prep.parts["test"]
    _, _, best = restore_model(run_dir)
    assert test.sample_ids is not None
    write_attributions(run_dir, best, test.inputs, test.y, proba, test.class_names,
                       list(test.sample_ids), prep.kinds["x"], prep.raw("test"))  # fmt: skip


def write_task_figures(run_dir: Path, cfg: RunConfig, prep: Prepared, proba: np.ndarray) -> None:
    """The task's own example figures of test samples (``Task.figures``), listed in
    ``figures.json`` for the report."""
    if prep.task.figures is None:
        return
    _, _, best = restore_model(run_dir)
    (run_dir / "figures").mkdir(exist_ok=True)
    drawn = prep.task.figures(run_dir / "figures", best, prep.parts["test"], proba,
                              dict(cfg.task.params))  # fmt: skip
    _json(run_dir / "figures.json", [{"png": f"figures/{png}", "caption": cap}
                                     for png, cap in drawn])  # fmt: skip


def explain_samples(
    model: Any, ds: ArrayDataset, encoder: Encoder, proba: np.ndarray, k: int = 5, top: int = 5
) -> list[dict[str, Any]]:
    """Attributions of ``k`` test samples (the most confident positives first, then the
    rest by score) by a model that :class:`~medtorch.models.registry.Explains`: each step's
    weight and its ``top`` elements by contribution, named by the encoder's ``decode``
    where it has one."""
    import torch

    # the positive class of a binary model; else the top output (what the model explains)
    score = proba if proba.ndim == 1 else proba[:, -1] if proba.shape[1] == 2 else proba.max(1)
    y = ds.y if not ds.multilabel else ds.y.max(1)
    order = sorted(range(len(ds)), key=lambda i: (-int(y[i] > 0), -float(score[i])))[:k]
    inputs = [torch.as_tensor(a[order]) for a in ds.inputs.values()]
    with torch.no_grad():
        weights, contrib = (v.detach().double().numpy() for v in model.explain(*inputs))
    x = ds.inputs["x"][order]
    times = ds.inputs.get("t")
    decode = getattr(encoder, "decode", str)
    assert ds.sample_ids is not None
    out = []
    for row, i in enumerate(order):
        steps = []
        for s in np.flatnonzero((x[row] != 0).reshape(len(x[row]), -1).any(1)):
            c = contrib[row, s]
            best = np.argsort(-np.abs(c))[:top]
            steps.append({
                "step": int(s),
                "days_before": float(times[order][row, s]) if times is not None else None,
                "weight": float(weights[row, s]),
                "top": [[decode(int(x[row, s, j])), float(c[j])] for j in best
                        if x[row, s, j] != 0],
            })  # fmt: skip
        out.append({"sample_id": str(ds.sample_ids[i]), "y_true": ds.y[i].tolist(),
                    "score": float(score[i]), "steps": steps})  # fmt: skip
    return out


def fit_after_training(
    model: Any, parts: dict[str, ArrayDataset], run_dir: Path
) -> dict[str, Any] | None:
    """Fit a model's second stage (:class:`~medtorch.models.registry.AfterFit`) on ``parts``
    (train, or train and valid).

    Its fitted buffers do not depend on the network's weights, so they are fitted once and
    written into every checkpoint of the run, which is what prediction, evaluation, export
    and ``medtorch predict`` load. The test split is never among ``parts`` (the model's
    ``after_fit_on`` picks train or train+valid); with valid among them, the validation
    scores are in-sample for the second stage, and the summary says so. A summary naming
    the ``input`` its ``features`` index gets their names from the dataset's
    ``meta["columns"]``.
    """
    import torch

    from medtorch.train import checkpoint as ckpt

    if not isinstance(model, AfterFit) or not isinstance(model, torch.nn.Module):
        return None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = list(parts.values())
    inputs = {k: np.concatenate([d.inputs[k] for d in ds]) for k in ds[0].inputs}
    summary = model.fit_after_training(
        inputs, np.concatenate([d.y for d in ds]), np.concatenate([d.groups for d in ds])
    )
    if summary is None:
        return None
    summary["fitted_on"] = "+".join(parts)
    names = (ds[0].meta.get("columns") or {}).get(summary.get("input"))
    if isinstance(summary.get("features"), list) and names:  # the stage's columns, by name
        summary["feature_names"] = [names[i] for i in summary["features"] if i < len(names)]
    fitted = {k: v.cpu() for k, v in model.state_dict().items() if not v.equal(before[k])}
    ckpt.patch_weights(run_dir / "checkpoints", fitted)
    log.info("fitted the second stage: %s", summary)
    return summary


def load_run(run_dir: Path) -> tuple[RunConfig, dict[str, Any]]:
    """A run's config.yaml and model.json, each checked (a damaged file is one line)."""
    from medtorch.run_folder import read_model_spec, read_run_config, require_run_folder

    run_dir = require_run_folder(Path(run_dir), "the run folder")
    return read_run_config(run_dir), read_model_spec(run_dir)


def load_encoder(run_dir: Path | str, cfg: RunConfig) -> Encoder:
    """The input encoder a run was fitted with (its task's encoder file)."""
    etype = encoder_type(get_task(cfg.task.name))
    path = Path(run_dir) / etype.filename
    if not path.is_file():
        raise ConfigError(f"expected {etype.filename} in the run folder, got {str(run_dir)!r} "
                          "without it; pass a folder written by `medtorch train`")  # fmt: skip
    if etype.filename == "normalizer.json":
        read_normalizer(run_dir)  # the default encoder's file, checked field by field
    d = read_json(path, f"{etype.filename} JSON")
    try:
        return etype.from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MedtorchError(f"expected the fields its encoder writes, got "
                            f"{type(exc).__name__}: {exc} in {path}; train the run again") from None  # fmt: skip


def load_normalizer(run_dir: Path | str) -> Normalizer:
    """The input normaliser a run was trained with (its ``normalizer.json``)."""
    return read_normalizer(run_dir)


def restore_model(run_dir: Path, checkpoint: str = "best"):
    """Rebuild a run's model and load its checkpoint weights (CPU), without running code
    from the run folder (:func:`medtorch.train.checkpoint.run_weights`)."""
    from medtorch.train.checkpoint import run_weights

    cfg, spec = load_run(run_dir)
    restore = get_entry(spec["name"]).restore  # without the starting weights: the run has its own
    params = restore(dict(spec["params"])) if restore is not None else spec["params"]
    model = build_model(spec["name"], params, spec["hints"], len(spec["class_names"]))
    model.load_state_dict(run_weights(Path(run_dir) / "checkpoints", checkpoint))
    model.eval()
    return cfg, spec, model


def evaluate_run(
    run_dir: Path, data_dir: str | Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Re-score a finished run's best checkpoint on its own test split and rewrite its report.

    ``overrides`` may change the ``eval`` section only (e.g. ``eval.tta=true``); the run's
    config.yaml is updated to say how its metrics were computed.
    """
    from medtorch.train.trainer import Trainer

    run_dir = Path(run_dir)
    cfg, _ = load_run(run_dir)
    bundled = run_source(run_dir).startswith("bundled")
    saved_test = saved_test_ids(run_dir)
    if overrides:
        bad = [o for o in overrides if not o.startswith("eval.")]
        if bad:
            raise ConfigError(
                f"expected eval.* keys, got {bad[0]!r} in `medtorch evaluate --set`; "
                "training settings cannot change after training"
            )
        cfg = load_config(cfg.model_dump(mode="json"), overrides, str(run_dir / "config.yaml"))
        dump_config(cfg, run_dir / "config.yaml")
    prep = prepare(cfg, task_data_dir(cfg, data_dir, bundled))
    test = prep.parts["test"]
    if saved_test is not None and list(map(str, saved_test)) != [
        str(s) for s in (test.sample_ids if test.sample_ids is not None else [])
    ]:
        raise MedtorchError(
            f"expected the test split recorded in {run_dir / 'splits.json'}, got a different one "
            "from the data now; check that the data files have not changed (medtorch data verify)"
        )
    _, _, model = restore_model(run_dir)
    trainer = Trainer(
        model, cfg.optim, cfg.trainer.model_copy(update={"progress": False}), None,
        test.class_names, input_kinds=prep.kinds, objective=objective(test),
    )  # fmt: skip
    proba = trainer.predict_proba(test, checkpoint=None, tta=cfg.eval.tta)
    metrics = (
        json.loads((run_dir / "metrics.json").read_text())
        if (run_dir / "metrics.json").is_file()
        else {}
    )
    metrics["test"] = score(cfg, test, proba)
    metrics["evaluated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _json(run_dir / "metrics.json", metrics)
    _predictions_csv(run_dir / "predictions_test.csv", test, proba)
    from medtorch.report.html import write_report

    write_report(run_dir)
    return metrics

"""Attribution maps of a run: the report's examples, ``medtorch explain`` and the
weight-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps").

The method is the one declared for the kind of the run's main input
(:mod:`medtorch.explain.registry`); this module names no kind.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtorch.errors import MedtorchError
from medtorch.explain.registry import Explainer, Panel, get_explainer

log = logging.getLogger("medtorch")

FILE = "attributions.json"  # in the run folder, with the figures under FIGURES
FIGURES = "attributions"
PER_CLASS = 2  # the most confident correct and the most confident wrong samples per class
BATCH = 64
SEEDS = (0, 1, 2)  # re-initialisations compared in the randomisation check
CHECKED = 8  # of the samples shown, this many (evenly spread) are checked: cheap on a CPU
SELECTION = (f"per true class, the {PER_CLASS} most confident correct and the {PER_CLASS} most "
             "confident wrong test samples (ties: the first in the test split)")  # fmt: skip
RANDOMISATION = (
    "Spearman rank correlation between the maps of the trained model and of the same "
    "architecture with re-initialised weights (3 draws), mean over the draws and up to 8 of "
    "the samples shown (Adebayo et al. 2018): near 1 means the maps do not depend on what "
    "the model learned (they trace the input or the architecture); near 0 is what a "
    "faithful method gives. A constant map (e.g. all zero) counts as 0."
)


def select_examples(y: np.ndarray, proba: np.ndarray, per_class: int = PER_CLASS) -> list[int]:
    """Row indices, class by class (by true class): the ``per_class`` most confident
    correct predictions, then the ``per_class`` most confident wrong ones (confidence:
    the probability of the predicted class; ties go to the earlier row)."""
    y = np.asarray(y).astype(np.int64)
    pred, conf = proba.argmax(1), proba.max(1)
    out: list[int] = []
    for c in range(proba.shape[1]):
        rows = np.flatnonzero(y == c)
        for keep in (pred[rows] == c, pred[rows] != c):
            chosen = rows[keep]
            order = np.lexsort((chosen, -conf[chosen]))  # confidence down, then row up
            out += [int(i) for i in chosen[order][:per_class]]
    return out


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every weight re-initialised (the layers' own
    ``reset_parameters``; a parameter without one is redrawn at its own scale). The global
    random state is left as it was, so a seeded run stays reproducible."""
    twin = copy.deepcopy(model)
    before = {k: v.detach().clone() for k, v in twin.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in twin.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
        with torch.no_grad():
            for name, p in twin.named_parameters():
                if torch.equal(p, before[name]):  # no layer reset it
                    scale = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.02
                    p.copy_(torch.randn_like(p) * scale)
    twin.eval()
    return twin


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps ``a[i]``, ``b[i]`` (0 where a map is
    constant)."""
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    out = np.zeros(len(a))
    for i in range(len(a)):
        ra, rb = rankdata(a[i]), rankdata(b[i])
        ra, rb = ra - ra.mean(), rb - rb.mean()
        den = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
        out[i] = float((ra * rb).sum() / den) if den > 0 else 0.0
    return out


def attribute(
    explainer: Explainer, model: nn.Module, inputs: Sequence[np.ndarray], target: np.ndarray
) -> np.ndarray:
    """The explainer's maps for ``inputs`` (encoded arrays, the model's order), in batches."""
    model.eval()
    out = []
    for s in range(0, len(target), BATCH):
        chunk = [torch.as_tensor(np.ascontiguousarray(a[s : s + BATCH])) for a in inputs]
        chunk[0] = chunk[0].float().requires_grad_(True)
        t = torch.as_tensor(target[s : s + BATCH], dtype=torch.long)
        out.append(np.asarray(explainer.attribute(model, chunk, t)))
    return np.concatenate(out)


def randomisation_test(
    explainer: Explainer,
    model: nn.Module,
    inputs: Sequence[np.ndarray],
    target: np.ndarray,
    maps: np.ndarray | None = None,
    seeds: Sequence[int] = SEEDS,
) -> dict[str, Any]:
    """Compare the maps of ``model`` with those of :func:`randomised_copy` (one copy per
    seed): ``spearman``, the mean Spearman correlation over the seeds and samples, then
    its mean per seed and per sample, and how many maps were constant."""
    if maps is None:
        maps = attribute(explainer, model, inputs, target)
    rhos, constant = [], 0
    for seed in seeds:
        random_maps = attribute(explainer, randomised_copy(model, seed), inputs, target)
        rhos.append(rank_correlation(maps, random_maps))
        flat = random_maps.reshape(len(random_maps), -1)
        constant += int((flat.max(1) == flat.min(1)).sum())
    flat = maps.reshape(len(maps), -1)
    rho = np.array(rhos)  # (seeds, samples)
    return {
        "spearman": round(float(rho.mean()), 4) if rho.size else None,
        "per_seed": [round(float(r), 4) for r in rho.mean(1)] if rho.size else [],
        "per_sample": [round(float(r), 4) for r in rho.mean(0)] if rho.size else [],
        "n": int(rho.shape[1]) if rho.ndim == 2 else 0,
        "seeds": list(seeds),
        "n_constant_trained": int((flat.max(1) == flat.min(1)).sum()),
        "n_constant_randomised": constant,
        "what": RANDOMISATION,
    }


def _models_inputs(model_inputs: dict[str, np.ndarray], rows: Sequence[int]) -> list[np.ndarray]:
    return [np.asarray(a)[list(rows)] for a in model_inputs.values()]


def write_attributions(
    run_dir: Path,
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    y: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    sample_ids: Sequence[Any],
    kind: str,
    shown: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """Draw the attribution maps of the examples :func:`select_examples` picks from a run's
    test split (one PNG per true class under ``attributions/``) and write
    ``attributions.json`` with the randomisation check. None (nothing written) when no
    method is declared for ``kind``. ``inputs``: the encoded model inputs; ``shown``: the
    main input as it is drawn (before encoding), else the encoded one.

    What fails here (a missing extra, a model without a layer to read) is written into
    the file as ``unavailable`` and logged: the trained run is kept and the report says why.
    """
    explainer = get_explainer(kind)
    if explainer is None:
        return None
    run_dir = Path(run_dir)
    try:
        result = _attributions(run_dir, explainer, model, inputs, y, proba, class_names,
                               sample_ids, shown)  # fmt: skip
    except Exception as exc:  # the run is trained and scored: never lose it to a drawing
        msg = str(exc) if isinstance(exc, MedtorchError) else f"{type(exc).__name__}: {exc}"
        log.warning("attribution maps not drawn: %s", msg)
        result = {"method": explainer.method, "unavailable": msg}
    (run_dir / FILE).write_text(json.dumps(result, indent=1) + "\n")
    return result


def _attributions(
    run_dir: Path,
    explainer: Explainer,
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    y: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    sample_ids: Sequence[Any],
    shown: np.ndarray | None,
) -> dict[str, Any]:
    base = {"method": explainer.method, "kind": explainer.kind, "note": explainer.note,
            "selection": SELECTION}  # fmt: skip
    if np.asarray(y).ndim != 1:
        return {**base, "unavailable": "multi-label runs have no correct/wrong per class to "
                "pick examples by; the maps are drawn for single-label runs"}  # fmt: skip
    rows = select_examples(y, proba)
    if not rows:
        return {**base, "unavailable": "the test split has no samples"}
    target = proba[rows].argmax(1)
    x_model = _models_inputs(inputs, rows)
    maps = attribute(explainer, model, x_model, target)
    some = np.unique(np.linspace(0, len(rows) - 1, min(CHECKED, len(rows))).round().astype(int))
    check = randomisation_test(explainer, model, [a[some] for a in x_model], target[some],
                               maps[some])  # fmt: skip
    xs = np.asarray(shown if shown is not None else next(iter(inputs.values())))[rows]
    (run_dir / FIGURES).mkdir(exist_ok=True)
    classes = []
    for c, name in enumerate(class_names):
        here = [k for k, i in enumerate(rows) if int(y[i]) == c]
        samples, panels = [], []
        for k in here:
            i, pred = rows[k], int(target[k])
            ok = pred == c
            samples.append({"sample_id": str(sample_ids[i]), "y_true": str(name),
                            "y_pred": str(class_names[pred]), "p_pred": round(float(proba[i, pred]), 4),
                            "correct": bool(ok)})  # fmt: skip
            panels.append(Panel(xs[k], maps[k], f"{sample_ids[i]}\n{'correct' if ok else 'WRONG'}: "
                                f"{class_names[pred]} ({proba[i, pred]:.2f})"))  # fmt: skip
        entry: dict[str, Any] = {"class": str(name), "samples": samples}
        if panels:
            figure = f"{FIGURES}/class_{c}.png"
            explainer.draw(panels, run_dir / figure)
            entry["figure"] = figure
        classes.append(entry)
    return {**base, "randomisation": check, "classes": classes}

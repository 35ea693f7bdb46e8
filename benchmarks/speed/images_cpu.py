"""Image training speed on the CPU: images/s of the transfer and from-scratch recipes' models
through medtorch's Trainer, and the same loop with the model replaced by a no-op, which
measures everything but the network (batch indexing, the recipe's augmentation, the
optimizer's bookkeeping).

    python benchmarks/speed/images_cpu.py [--images 512] [--repeats 3] [--threads 2] [--json FILE]

Each configuration trains one epoch (its training steps timed, as the run's history.csv
reports them) over ``--images`` random images of the recipe's size
(random pixels cost the network exactly what photographs do), ``--repeats`` times; the
median is reported. A fine-tuning recipe is timed in its first unfrozen stage (the phase its
epochs after the frozen ones run); a linear probe frozen for the whole run, frozen. ``data share`` = no-op time / model time: the fraction of a training
epoch that is not the network.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtorch.config import load_config
from medtorch.data.dataset import ArrayDataset
from medtorch.models import create_model
from medtorch.train import Trainer

RECIPES = (
    "ham10000_transfer",
    "ham10000_linear_probe",
    "ham10000_resnet18",
    "retinamnist_transfer",
)


class NoOp(nn.Module):
    """Logits from the mean pixel: one multiply-add per image, a parameter to update."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((1, 2, 3))[:, None] * self.w


def _epoch_images_per_s(recipe: str, model: nn.Module, n: int, size: int, seed: int) -> float:
    cfg = load_config(recipe, ["trainer.max_epochs=1", "trainer.progress=false"])
    trainer_cfg = cfg.trainer.model_copy(update={"max_epochs": 1, "progress": False})
    if isinstance(model, NoOp):
        trainer_cfg = trainer_cfg.model_copy(update={"finetune": None})
    elif (
        trainer_cfg.finetune is not None
        and trainer_cfg.finetune.freeze_epochs < load_config(recipe).trainer.max_epochs
    ):
        # the phase most epochs run: the recipe's layer groups unfrozen (its first stage)
        ft = trainer_cfg.finetune.model_copy(update={"freeze_epochs": 0})
        trainer_cfg = trainer_cfg.model_copy(update={"finetune": ft})
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, size, size), dtype=np.float32)
    k = 7 if recipe.startswith("ham") else 5
    y = np.arange(n) % k
    ds = ArrayDataset(
        inputs={"x": x}, y=y, groups=np.arange(n), class_names=[str(i) for i in range(k)]
    )
    tiny = ArrayDataset(inputs={"x": x[:8]}, y=y[:8], groups=np.arange(8),
                        class_names=[str(i) for i in range(k)])  # fmt: skip
    tr = Trainer(model, cfg.optim, trainer_cfg, None, ds.class_names, input_kinds={"x": "image"})
    history = tr.fit(ds, tiny)
    return float(history[0]["train_samples_per_s"])  # the epoch's training steps only


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows: list[dict[str, Any]] = []
    for recipe in a.recipes:
        cfg = load_config(recipe)
        params = dict(cfg.model.params)
        size = int(cfg.task.params.get("image_size") or 28)
        if params.get("pretrained") == "imagenet":
            params["pretrained"] = "none"  # the same network; the weights do not change its cost
        k = 7 if recipe.startswith("ham") else 5
        extra = {"image_size": size} if cfg.model.name == "resnet2d" else {}
        runs: dict[str, list[float]] = {"model": [], "noop": []}
        for r in range(a.repeats):
            torch.manual_seed(r)
            model = create_model(cfg.model.name, 3, k, **params, **extra)
            runs["model"].append(_epoch_images_per_s(recipe, model, a.images, size, r))
            runs["noop"].append(_epoch_images_per_s(recipe, NoOp(k), a.images, size, r))
        med = {key: statistics.median(v) for key, v in runs.items()}
        row = {
            "recipe": recipe,
            "model": cfg.model.name,
            "image_size": size,
            "threads": a.threads,
            "images_per_s": med["model"],
            "noop_images_per_s": med["noop"],
            "data_share": med["model"] / med["noop"],
            "repeats": runs,
        }
        rows.append(row)
        print(f"{recipe}: {med['model']:.1f} images/s training ({cfg.model.name}, {size} px, "
              f"{a.threads} threads); no-op model {med['noop']:.0f} images/s; the network is "
              f"{100 * (1 - row['data_share']):.1f}% of the epoch")  # fmt: skip
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

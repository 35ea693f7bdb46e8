"""The trainer in eval mode: logits in batches, the validation row of the history, and
probabilities with optional test-time
augmentation views (only for inputs declared or derived as signals)."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from medtorch.data.dataset import ArrayDataset
from medtorch.train.inputs import resolve_kinds, tta_views
from medtorch.train.parts import HISTORY_COLUMNS

if TYPE_CHECKING:
    from medtorch.train.trainer import Trainer


MAX_BATCH_VALUES = 1 << 24  # input values per inference batch: 64 MB of float32


def batch_rows(requested: int, x: torch.Tensor) -> int:
    """Rows per inference batch: ``requested``, fewer when the samples are large, so that a
    batch holds at most ``MAX_BATCH_VALUES`` input values (111 images of 3 x 224 x 224; the
    activations of a convolutional network are many times its input). Small samples (a
    signal, a feature vector) keep the requested batch."""
    per_row = max(1, x[0].numel()) if len(x) else 1
    return max(1, min(requested, MAX_BATCH_VALUES // per_row))


@torch.inference_mode()
def logits(tr: Trainer, net: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    """(N, K) float32 logits in eval mode, in batches of ``eval_batch_size`` rows (fewer for
    large samples: :func:`batch_rows`)."""
    was_training = net.training
    net.eval()
    n = len(xs[0])
    bs = batch_rows(tr.cfg.eval_batch_size, xs[0])
    out = []
    for s in range(0, n, bs):
        with tr.autocast():
            out.append(net(*[x[s : s + bs] for x in xs]).float())
    net.train(was_training)
    return torch.cat(out) if out else torch.empty(0, len(tr.class_names), device=tr.device)


def valid_row(
    tr: Trainer,
    valid: ArrayDataset | None,
    vxs: list[torch.Tensor] | None,
    vy: torch.Tensor | None,
    weight: torch.Tensor | None,
) -> dict[str, float]:
    """The validation columns of one history row (NaN without a validation set)."""
    if valid is None or vxs is None or vy is None:
        return dict.fromkeys(HISTORY_COLUMNS[2:7], math.nan)
    vlogits = logits(tr, tr.eval_model, vxs)  # (Nv, K), never through the DDP wrapper
    proba = tr.objective.proba(vlogits).cpu().numpy()
    return {"valid_loss": tr.objective.valid_loss(vlogits, vy, weight),
            **tr.objective.metrics(valid.y, proba)}  # fmt: skip


def probabilities(
    tr: Trainer, ds: ArrayDataset, state: dict[str, torch.Tensor] | None, tta: bool
) -> np.ndarray:
    """(N, K) float64 probabilities of ``ds`` with the weights ``state`` (None: the model's
    own, or their moving average under ``trainer.ema``), averaged over the TTA views when
    ``tta``. The trainer's model is left unchanged."""
    net = tr.eval_model  # never the DDP wrapper: prediction may run on rank 0 alone
    if state is not None:
        net = copy.deepcopy(net)
        net.load_state_dict(state)
    xs = tr.tensors(ds)
    kinds = list(resolve_kinds(tr.input_kinds, ds.inputs).values())
    views = tta_views(xs, kinds) if tta else iter([xs])
    probs = [tr.objective.proba(logits(tr, net, v)) for v in views]  # one view at a time
    return (probs[0] if len(probs) == 1 else torch.stack(probs).mean(0)).cpu().numpy()

"""An exponential moving average of the weights (``trainer.ema``), the network that is validated,
kept as the best checkpoint and used for prediction when the option is on.

After every optimisation step ``ema = decay_t * ema + (1 - decay_t) * weights`` for every
parameter and floating buffer (batch-norm running statistics too), with the warm-up of
TensorFlow's ``ExponentialMovingAverage(num_updates=...)``:
``decay_t = min(decay, (1 + t) / (10 + t))`` at step ``t``, so the
average does not remember the random or freshly-initialised head of the first steps for
hundreds of steps. Integer buffers (``num_batches_tracked``) are copied. The averaging itself
is :class:`torch.optim.swa_utils.AveragedModel`; this module only gives it the warm-up, a
state that a checkpoint can hold, and one place to ask which network to evaluate.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_decay(decay: float, step: int) -> float:
    """The decay of update ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The moving average of ``model``'s weights; :attr:`module` is the averaged network."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:  # the config checks it too; a direct caller gets the same line
            raise ValueError(f"expected an EMA decay in (0, 1), got {decay}")
        self.decay = float(decay)

        def lerp(
            avg: list[torch.Tensor] | tuple[torch.Tensor, ...],
            new: list[torch.Tensor] | tuple[torch.Tensor, ...],
            n: torch.Tensor | int,
        ) -> None:
            # n: the updates before this one (AveragedModel's count); the first one copied
            d = warmup_decay(self.decay, int(n) - 1)
            if torch.is_floating_point(avg[0]):
                torch._foreach_lerp_(list(avg), list(new), 1.0 - d)
            else:
                for a, b in zip(avg, new, strict=True):
                    a.copy_(b)

        self.averaged = AveragedModel(model, multi_avg_fn=lerp, use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged network (same class and state_dict keys as the trained model)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (call after each step)."""
        self.averaged.update_parameters(model)

    @property
    def steps(self) -> int:
        """Updates folded in so far (AveragedModel's own count)."""
        return int(self.averaged.n_averaged)

    def load(self, weights: dict[str, torch.Tensor], steps: int) -> None:
        """Restore the average and its update count from a checkpoint (``last.pt`` keeps
        them as ``ema_model`` and ``ema_steps``)."""
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(int(steps))

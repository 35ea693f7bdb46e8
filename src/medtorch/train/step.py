"""One optimisation step: clear the gradients, backpropagate (scaled under fp16 AMP), clip,
update, and advance a per-batch schedule; and the fused Adam update without torch.optim's
per-call Python (:class:`FastAdamStep`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GradientStep:
    """``step(loss)``: the update of one batch, with the options fixed for the run."""

    def __init__(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        scaler: Any,
        grad_clip: float | None,
        per_batch_scheduler: Any,
    ) -> None:
        self.model, self.opt, self.scaler = model, opt, scaler
        self.grad_clip, self.scheduler = grad_clip, per_batch_scheduler
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.opt_step = FastAdamStep(opt) if FastAdamStep.supported(opt) else opt.step

    def __call__(self, loss: torch.Tensor) -> None:
        for p in self.params:  # zero_grad(set_to_none=True) without its overhead
            p.grad = None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt_step()
        if self.scheduler is not None:  # one-cycle: stepped per batch
            self.scheduler.step()


class FastAdamStep:
    """``opt.step()`` for a fused Adam/AdamW, minus torch.optim's per-call Python.

    At batch 10 a small model's step is ~1 ms and ``Optimizer.step`` spends a tenth of it on
    hooks, state look-ups and grouping before the one fused kernel runs. This calls the same
    kernel on the optimizer's own state tensors (so results and checkpoints are identical to
    ``opt.step()``; a test checks bit-equality), reading lr, betas, eps and weight decay from
    the param group at every step so schedulers keep working. The first call, and any step
    where a parameter has no gradient, go through ``opt.step()`` itself.
    """

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.lists: tuple[list[torch.Tensor], ...] | None = None

    @staticmethod
    def supported(opt: torch.optim.Optimizer) -> bool:
        d = opt.defaults
        params = [p for g in opt.param_groups for p in g["params"]]
        return (
            isinstance(opt, torch.optim.Adam)  # AdamW is an Adam with decoupled weight decay
            and bool(d.get("fused"))
            and not any(d.get(k) for k in ("amsgrad", "maximize", "differentiable", "capturable"))
            and len(opt.param_groups) == 1
            and hasattr(torch, "_fused_adam_")
            and len({(p.device, p.dtype) for p in params}) == 1
        )

    def __call__(self) -> None:
        group = self.opt.param_groups[0]
        if self.lists is None:
            self.opt.step()  # creates the state tensors
            params = list(group["params"])
            state = [self.opt.state[p] for p in params]
            self.lists = (
                params,
                [s["exp_avg"] for s in state],
                [s["exp_avg_sq"] for s in state],
                [s["step"] for s in state],
            )
            return
        params, exp_avgs, exp_avg_sqs, steps = self.lists
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            self.opt.step()
            return
        beta1, beta2 = group["betas"]
        fused = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        torch._foreach_add_(steps, 1)
        fused(
            params,
            grads,  # type: ignore[arg-type]
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

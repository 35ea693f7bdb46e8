"""Transfer learning's schedule (``trainer.finetune``): a frozen backbone first, then its
layer groups unfrozen in stages, each with its own learning rate.

The model names its layer groups, from the input to the output, with ``finetune_groups()
-> [(name, [parameters])]``; the last group is the new head (see
:class:`~medtorch.models.registry.FineTunable`). From that:

- **param groups**: one optimizer group per layer group, ``lr = optim.lr x lr_mult`` where the
  head has 1 and the backbone's groups ``backbone_lr_mult x layer_lr_decay^k`` (k = 0 for the
  group next to the head, growing towards the input: discriminative rates, as ULMFiT and
  the fine-tuning recipes of Esteva and Gulshan's era). Schedulers scale each group's own
  rate.
- **what trains in epoch e** (1-based): the head always; nothing else while ``e <=
  freeze_epochs``; then stage s = (e - freeze_epochs - 1) // unfreeze_every + 1 unfreezes
  the first s entries of ``unfreeze`` (each a group name, a list of names, or ``all``). Frozen parameters get no
  gradient (``requires_grad`` off, so the optimizer skips them); the batch-norm layers of
  frozen groups, and of every backbone group with ``freeze_bn``, stay in eval mode, so their
  running statistics keep their pretrained values.

The state is a pure function of the epoch, so a resumed run is frozen exactly as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from medtorch.config import FinetuneConfig, OptimConfig
from medtorch.errors import ConfigError, fmt
from medtorch.models.registry import FineTunable

log = logging.getLogger("medtorch")


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's named layer groups (input to head); a ConfigError when it has none."""
    if not isinstance(model, FineTunable):
        raise ConfigError(fmt("a model that names its layer groups (finetune_groups)",
                              type(model).__name__, "trainer.finetune",
                              "use resnet2d or efficientnet_lite0, or remove trainer.finetune"))  # fmt: skip
    groups = [(str(n), list(ps)) for n, ps in model.finetune_groups()]
    if len(groups) < 2:
        raise ConfigError(fmt("a backbone group and a head", [n for n, _ in groups],
                              "trainer.finetune", "the model's finetune_groups is too short"))  # fmt: skip
    return groups


class Finetune:
    """The schedule of one run: optimizer groups and the per-epoch frozen state."""

    def __init__(self, model: nn.Module, cfg: FinetuneConfig) -> None:
        self.model, self.cfg = model, cfg
        self.groups = layer_groups(model)
        check_covers(model, self.groups)
        names = [n for n, _ in self.groups]
        self.stages = [[s] if isinstance(s, str) else list(s) for s in cfg.unfreeze]
        for i, stage in enumerate(self.stages):
            for name in stage:
                if name != "all" and name not in names[:-1]:
                    raise ConfigError(fmt(f"backbone group names {names[:-1]} or all", name,
                                          f"trainer.finetune.unfreeze[{i}]",
                                          "name the model's own layer groups"))  # fmt: skip
        self._bn = self._batchnorms()

    def lr_mults(self) -> list[float]:
        """Learning-rate multiplier of each group (input to head; the head 1)."""
        n = len(self.groups) - 1
        c = self.cfg
        return [c.backbone_lr_mult * c.layer_lr_decay ** (n - 1 - i) for i in range(n)] + [1.0]

    def param_groups(self, optim: OptimConfig) -> list[dict[str, Any]]:
        """Optimizer groups: ``params``, ``lr`` (optim.lr x mult), ``lr_mult``, ``name``."""
        return [
            {"params": ps, "lr": optim.lr * m, "lr_mult": m, "name": n}
            for (n, ps), m in zip(self.groups, self.lr_mults())
        ]

    def trainable(self, epoch: int) -> list[str]:
        """Names of the groups that train in ``epoch`` (1-based)."""
        names = [n for n, _ in self.groups]
        c = self.cfg
        if epoch <= c.freeze_epochs:
            return names[-1:]
        stage = (epoch - c.freeze_epochs - 1) // c.unfreeze_every + 1
        wanted = {n for s in self.stages[:stage] for n in s}
        if "all" in wanted:
            return names
        return [n for n in names[:-1] if n in wanted] + names[-1:]

    def apply(self, epoch: int) -> None:
        """Set ``requires_grad`` for ``epoch``; call after ``model.train()`` each epoch (it
        also puts frozen batch-norm layers back in eval mode)."""
        on = set(self.trainable(epoch))
        for name, params in self.groups:
            for p in params:
                p.requires_grad_(name in on)
        for name, bns in self._bn.items():
            keep = name not in on or (self.cfg.freeze_bn and name != self.groups[-1][0])
            for bn in bns:
                if keep:
                    bn.eval()
                    for p in bn.parameters(recurse=False):
                        p.requires_grad_(False)

    def describe(self, epoch: int) -> str:
        on = self.trainable(epoch)
        return "all layer groups" if len(on) == len(self.groups) else ", ".join(on)

    def _batchnorms(self) -> dict[str, list[nn.Module]]:
        """The batch-norm modules of each group (a module belongs to the group that holds
        its weight)."""
        owner = {id(p): n for n, ps in self.groups for p in ps}
        out: dict[str, list[nn.Module]] = {n: [] for n, _ in self.groups}
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                name = owner.get(id(m.weight))
                if name is not None:
                    out[name].append(m)
        return out


def check_covers(model: nn.Module, groups: list[tuple[str, list[nn.Parameter]]]) -> None:
    """Every trainable parameter belongs to exactly one group (else it would never train,
    or train twice)."""
    seen: dict[int, str] = {}
    for name, ps in groups:
        for p in ps:
            if id(p) in seen:
                raise ConfigError(f"expected each parameter in one layer group, got one in both "
                                  f"{seen[id(p)]!r} and {name!r} in {type(model).__name__}."
                                  "finetune_groups; fix the model's groups")  # fmt: skip
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise ConfigError(fmt("every parameter in a layer group", f"{len(missing)} outside "
                              f"(first {missing[0]!r})", f"{type(model).__name__}.finetune_groups",
                              "fix the model's groups"))  # fmt: skip

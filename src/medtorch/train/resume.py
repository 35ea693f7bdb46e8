"""The trainer's state to and from its checkpoint files (the layout is in
:mod:`medtorch.train.checkpoint`): what :meth:`Trainer.fit` saves after every epoch, and what
``resume=True`` and ``predict_proba(checkpoint=...)`` read back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medtorch.errors import ConfigError, fmt
from medtorch.train import atomic
from medtorch.train import checkpoint as ckpt
from medtorch.train.parts import HISTORY_COLUMNS

if TYPE_CHECKING:
    from medtorch.train.trainer import Trainer

log = logging.getLogger("medtorch")


def save_epoch(tr: Trainer, epoch: int, schedule_steps: int, scaler: Any,
               rngs: list[dict[str, Any]], improved: bool, wall_s: float) -> None:  # fmt: skip
    """Write one epoch's checkpoint files, then history.csv (never ahead of them)."""
    assert tr.optimizer is not None and tr.run_dir is not None
    state = {
        "format": ckpt.CHECKPOINT_FORMAT,
        "model": tr.model.state_dict(),
        "best_model": tr.best_state,
        "ema_model": tr.ema.module.state_dict() if tr.ema is not None else None,
        "ema_steps": tr.ema.steps if tr.ema is not None else None,
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.scheduler.state_dict() if tr.scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        **tr.sel.state(),
        "schedule_steps": schedule_steps,
        "train_wall_s": wall_s,
        "cpu_mkldnn": tr.cpu_mkldnn,
        "cpu_threads": tr.cpu_threads,
        "history": tr.history,
        "rng": rngs[0],
        "rng_ranks": rngs if len(rngs) > 1 else None,
        "world_size": tr.dist.world,
        "monitor": tr.sel.monitor,
        "monitor_mode": tr.sel.mode,
        "class_names": tr.class_names,
        "objective": tr.objective.name,
        "config": {
            "optim": tr.optim_cfg.model_dump(mode="json"),
            "trainer": tr.cfg.model_dump(mode="json"),
        },
    }
    ckpt.write_epoch(tr.run_dir / "checkpoints", state, best_changed=improved)
    ckpt.write_history(tr.run_dir / "history.csv", tr.history, HISTORY_COLUMNS)


def load_into(tr: Trainer, schedule_steps: int, scaler: Any) -> dict[str, Any] | None:
    """Load the newest good checkpoint into the trainer's model, optimizer, counters and
    RNGs; None (a fresh start) when the run has none yet."""
    if tr.checkpoint_dir is None or tr.run_dir is None:
        raise ConfigError(
            fmt("a run folder to resume from", None, "run_dir", "pass the run's folder")
        )
    atomic.clean_stale(tr.run_dir)  # e.g. history.csv.tmp, metrics.json.tmp of a killed write
    state = ckpt.load_resume_state(tr.checkpoint_dir)
    if state is None:
        log.info("no checkpoint in %s yet: training starts from epoch 1", tr.checkpoint_dir)
        return None
    if state["schedule_steps"] != schedule_steps:
        raise ConfigError(fmt(f"a schedule of {state['schedule_steps']} steps as in the resumed run",
                              schedule_steps, "trainer.max_epochs / trainer.batch_size",
                              "resume with the run's max_epochs, batch_size and training set"))  # fmt: skip
    saved_world = int(state.get("world_size", 1))
    if saved_world != tr.dist.world:
        raise ConfigError(fmt(f"the {saved_world} process(es) the run was trained with",
                              tr.dist.world, "the number of processes (torchrun --nproc-per-node)",
                              f"resume with {saved_world} process(es) for an exact continuation"))  # fmt: skip
    saved_ema = state.get("ema_model") is not None
    if saved_ema != (tr.ema is not None):
        raise ConfigError(fmt(f"trainer.ema {'set' if saved_ema else 'null'} as in the resumed run",
                              tr.cfg.ema, "trainer.ema",
                              "resume with the run's own trainer settings"))  # fmt: skip
    assert tr.optimizer is not None
    tr.model.load_state_dict(state["model"])
    if tr.ema is not None:
        tr.ema.load(state["ema_model"], state["ema_steps"])
    tr.optimizer.load_state_dict(state["optimizer"])
    if tr.scheduler is not None and state["scheduler"] is not None:
        tr.scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    own_rng = state["rng_ranks"][tr.dist.rank] if tr.dist.active else state["rng"]
    ckpt.set_rng_state(own_rng, tr.shuffle_gen)
    tr.history = list(state["history"])
    tr.sel.load(state)
    tr.best_state = state["best_model"]
    tr.prior_wall_s = float(state.get("train_wall_s", 0.0))
    if "cpu_mkldnn" in state:
        tr.cpu_mkldnn, tr.cpu_threads = bool(state["cpu_mkldnn"]), int(state["cpu_threads"])
    if tr.dist.main:  # a crash between files left the best-weights copies or history behind
        ckpt.sync_best(tr.checkpoint_dir, state)
        ckpt.write_history(tr.run_dir / "history.csv", tr.history, HISTORY_COLUMNS)
    log.info("resumed from %s at epoch %d", tr.checkpoint_dir / ckpt.LAST, state["epoch"])
    return state


def weights_for(tr: Trainer, checkpoint: str) -> dict[str, torch.Tensor] | None:
    """The weights ``predict_proba(checkpoint=...)`` uses (None: the current ones)."""
    folder = tr.checkpoint_dir
    named = checkpoint in ("best", "last") and folder is not None
    path = folder / f"{checkpoint}.pt" if named and folder is not None else Path(checkpoint)
    if path.is_file():
        state = ckpt.load_checkpoint(path)
        if (
            checkpoint == "best"
            and tr.best_epoch is not None
            and state.get("epoch") != tr.best_epoch
        ):
            raise ckpt.CheckpointError(
                f"expected the weights of best epoch {tr.best_epoch}, got epoch "
                f"{state.get('epoch')} in {path}; resume the run to repair its checkpoints"
            )
        return ckpt.network_weights(state)
    if checkpoint == "best" and tr.best_state is not None:
        return tr.best_state
    if checkpoint == "best":
        log.warning("no best checkpoint found; predicting with the current weights")
        return None
    raise ConfigError(fmt("a checkpoint file", str(path), "predict_proba(checkpoint=...)",
                          "use best, last, None or an existing .pt path"))  # fmt: skip

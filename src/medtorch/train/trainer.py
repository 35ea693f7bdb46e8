"""The one training loop: in-memory batches, early stopping, schedules, checkpoints, exact resume.

Read :meth:`Trainer._fit` top to bottom; it is the whole loop, and each step it takes is a
small piece in its own file:

    parts.py        device, tensors, seeding, loss weights, optimizer, scheduler, valid metrics
    objective.py    multiclass (softmax) or multilabel (sigmoid) labels, loss, probabilities
    inputs.py       which inputs are signals / images / codes..., so augmentation and TTA
                    touch only what may be flipped
    checks.py       the splits and the model's output fit the classes
    step.py         one optimisation step (AMP scaling, clipping, fused Adam)
    ema.py          the moving average of the weights (trainer.ema)
    selection.py    the best epoch and early stopping
    resume.py       the trainer's state to and from its checkpoint
    checkpoint.py   the checkpoint files, written crash-safe and read without running code
    signals.py      SIGINT / SIGTERM stop at a safe point with the resume command
    progress.py     the progress bar and the per-epoch log line
    tracking.py     optional TensorBoard / MLflow logging (trainer.loggers)
    cpu.py          oneDNN-or-native convolutions and the thread count
    distributed.py  several processes under torchrun (DDP)

Design choices: data is already in memory (:class:`~medtorch.data.dataset.ArrayDataset`), so
each input becomes a tensor once, on the training device, and a batch is ``t[idx]`` for a
slice of a shuffled index tensor (no DataLoader, so ``trainer.num_workers`` must be 0). Floating inputs become float32, integer inputs int64, boolean inputs stay bool.
The model returns logits; the loss lives in the :class:`~medtorch.train.objective.Objective`.
Under torchrun each rank takes its share of every global batch of the shared epoch order and
rank 0 validates, decides and writes; validation, prediction and checkpoints always use the
unwrapped model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, MedtorchError, fmt
from medtorch.train import atomic, distributed, evaluation, faults, signals, tracking
from medtorch.train import checkpoint as ckpt
from medtorch.train import resume as resume_state
from medtorch.train.checks import check_logits, check_splits
from medtorch.train.cpu import mkldnn_enabled, pick_cpu_kernels
from medtorch.train.ema import WeightAverage
from medtorch.train.finetune import Finetune
from medtorch.train.inputs import augment_batch, resolve_kinds
from medtorch.train.objective import Objective
from medtorch.train.parts import (
    HISTORY_COLUMNS,
    MONITORS,
    build_optimizer,
    build_scheduler,
    loss_weights,
    seed_everything,
    select_device,
    to_tensor,
)
from medtorch.train.progress import EpochBar, log_early_stop, log_epoch
from medtorch.train.selection import Selection, check_monitor
from medtorch.train.step import GradientStep

__all__ = ["HISTORY_COLUMNS", "MONITORS", "Trainer"]

log = logging.getLogger("medtorch")


class Trainer:
    """Fit a model that returns logits on in-memory :class:`ArrayDataset` splits.

    After :meth:`fit` the model holds the weights of the *last* epoch; the best epoch's
    weights are in ``run_dir/checkpoints/best.pt`` (and in memory) and are used by
    ``predict_proba(ds, checkpoint="best")``. With ``trainer.ema`` the moving average of the
    weights (:attr:`eval_model`) is the network that is validated, kept as best and predicts;
    ``model`` still holds the last step's own weights.

    ``input_kinds``: input name -> ``signal`` / ``image`` / ``features`` / ``codes`` /
    ``times`` / ``values`` (:mod:`medtorch.train.inputs`): only signals and images are
    augmented or given TTA views. None derives them from the first input's rank as before.
    ``objective``: ``multiclass`` (y: class indices) or ``multilabel`` (y: (N, L) of 0/1,
    one sigmoid per label). Attributes: ``history``, ``best_epoch``, ``best_score``,
    ``stopped_early``, ``device``, ``prior_wall_s`` (training seconds of earlier sessions
    of a resumed run).
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        trainer: TrainerConfig,
        run_dir: Path | None,
        class_names: list[str],
        input_kinds: dict[str, str] | None = None,
        objective: str = "multiclass",
    ) -> None:
        self.optim_cfg, self.cfg = optim, trainer
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.class_names = list(class_names)
        check_monitor(trainer)
        if isinstance(trainer.class_weights, list) and len(trainer.class_weights) != len(
            self.class_names
        ):
            raise ConfigError(fmt(f"{len(self.class_names)} weights (one per class)",
                                  trainer.class_weights, "trainer.class_weights",
                                  "give one float per class, or none / balanced"))  # fmt: skip
        self.objective = Objective(objective, len(self.class_names), trainer)
        tracking.check_loggers(trainer.loggers)
        self.input_kinds = input_kinds
        self.dist = distributed.setup(trainer.device)
        self.device = select_device(trainer.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        self.model = model.to(self.device)
        self._net = distributed.wrap(self.model, self.device, trainer.sync_batchnorm)
        use_amp = trainer.amp and self.device.type == "cuda"
        self.amp_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if use_amp
            else None
        )
        self.sel = Selection(trainer, has_valid=True)
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.best_state: dict[str, torch.Tensor] | None = None  # CPU copy of the best weights
        self.ema: WeightAverage | None = None
        self.cpu_mkldnn = bool(torch.backends.mkldnn.enabled)
        self.cpu_threads = torch.get_num_threads()
        self.prior_wall_s = 0.0
        self.shuffle_gen = torch.Generator()  # CPU: the batch order does not depend on the device

    # the selection's state, under the names callers have always read
    monitor = property(lambda self: self.sel.monitor)
    mode = property(lambda self: self.sel.mode)
    best_epoch = property(lambda self: self.sel.best_epoch)
    best_score = property(lambda self: self.sel.best_score)
    stopped_early = property(lambda self: self.sel.stopped_early)

    @property
    def eval_model(self) -> nn.Module:
        """The network that is validated and predicts: the weight average under
        ``trainer.ema``, else the model itself (never the DDP wrapper)."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run_dir / "checkpoints" if self.run_dir is not None else None

    @staticmethod
    def load_checkpoint(path: str | Path) -> dict[str, Any]:
        """Read a checkpoint dict onto the CPU; layout in :mod:`medtorch.train.checkpoint`."""
        return ckpt.load_checkpoint(path)

    # -- the loop ----------------------------------------------------------------------------
    def fit(
        self, train: ArrayDataset, valid: ArrayDataset | None, resume: bool = False
    ) -> list[dict[str, Any]]:
        """Train; return the history (one dict per epoch, keys ``HISTORY_COLUMNS``).

        ``resume=True`` continues exactly where ``run_dir/checkpoints/last.pt`` stopped (a
        damaged one falls back to the epoch before; none at all restarts from epoch 1).
        SIGINT / SIGTERM stop after the current step and raise
        :class:`~medtorch.train.signals.TrainingInterrupted` naming the resume command.
        """
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            with signals.stop_requests() as stop:
                return self._fit(train, valid, resume, stop)
        finally:  # the thread count and determinism are process-wide: leave them as found
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)

    def _fit(
        self, train: ArrayDataset, valid: ArrayDataset | None, resume: bool, stop: Any
    ) -> list[dict[str, Any]]:
        cfg, t_start = self.cfg, time.perf_counter()
        self.sel = sel = Selection(cfg, has_valid=valid is not None)
        check_splits(train, valid, self.class_names, self.objective, sel.monitor)
        if isinstance(cfg.num_threads, int):
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed, self.dist.rank, self.shuffle_gen, self.device, cfg.deterministic)

        # data -> tensors, once (the fast path: batches are index slices of these)
        n, bs = len(train), cfg.batch_size  # bs: the global batch, split across processes
        rank, world = self.dist.rank, self.dist.world
        distributed.check_batch_size(bs, world)
        n_epoch = n + (-n % world)  # rows per epoch, padded to divide across the processes
        kinds = list(resolve_kinds(self.input_kinds, train.inputs).values())
        xs, y = self._tensors(train), self.objective.labels(train.y, self.device)
        vxs = self._tensors(valid) if valid is not None else None
        vy = self.objective.labels(valid.y, self.device) if valid is not None else None
        weight, sample_w = (
            (None, None)
            if self.objective.multilabel
            else loss_weights(cfg, train.y, len(self.class_names), self.device)
        )

        # optimizer and schedule (resume checks that the schedule has the run's length)
        steps_per_epoch = math.ceil(n_epoch / bs)
        ft = Finetune(self.model, cfg.finetune) if cfg.finetune is not None else None
        params = ft.param_groups(self.optim_cfg) if ft is not None else self.model.parameters()
        self.optimizer = opt = build_optimizer(params, self.optim_cfg)
        self.scheduler = sched = build_scheduler(opt, self.optim_cfg, cfg.max_epochs,
                                                 steps_per_epoch, sel.mode)  # fmt: skip
        per_epoch = {"cosine": cfg.max_epochs, "onecycle": cfg.max_epochs * steps_per_epoch}
        schedule_steps = per_epoch.get(self.optim_cfg.scheduler, 0)
        scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

        self.history, self.best_state, start_epoch = [], None, 0
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema is not None else None
        saved = resume_state.load_into(self, schedule_steps, scaler) if resume else None
        if saved is not None:
            start_epoch = int(saved["epoch"])
            if sel.stopped_early or start_epoch >= cfg.max_epochs:
                log.info("run already finished at epoch %d (stopped early: %s); nothing to train",
                         start_epoch, sel.stopped_early)  # fmt: skip
                return self.history
        elif self.checkpoint_dir is not None and self.dist.main:
            atomic.clean_stale(self.checkpoint_dir)
        update = GradientStep(self.model, opt, scaler, cfg.grad_clip,
                              sched if self.optim_cfg.scheduler == "onecycle" else None)  # fmt: skip
        self._choose_cpu_kernels(saved, [x[torch.arange(min(bs, n))] for x in xs])

        net = self._net
        config = {
            "optim": self.optim_cfg.model_dump(mode="json"),
            "trainer": cfg.model_dump(mode="json"),
        }
        trackers = tracking.open_for(cfg.loggers, self.run_dir if self.dist.main else None, config)
        with mkldnn_enabled(self.cpu_mkldnn):
            for epoch in range(start_epoch + 1, cfg.max_epochs + 1):
                # train one epoch: a seeded order, global batches split across processes
                t0 = time.perf_counter()
                net.train()
                if ft is not None:  # frozen groups: no gradients, batch norm in eval mode
                    ft.apply(epoch)
                    if epoch == start_epoch + 1 or ft.trainable(epoch) != ft.trainable(epoch - 1):
                        log.info("epoch %d trains %s", epoch, ft.describe(epoch))
                order = distributed.pad_order(self._epoch_order(y, sample_w), world)
                loss_sum = torch.zeros((), device=self.device)
                bar = EpochBar(
                    self.dist.main and cfg.progress, steps_per_epoch, epoch, cfg.max_epochs
                )
                for step, s in enumerate(range(0, n_epoch, bs)):
                    gidx = order[s : s + bs]  # the global batch
                    idx = distributed.shard_batch(gidx, rank, world)  # this process's rows
                    with self._autocast():
                        batch = [x[idx] for x in xs]
                        if cfg.augment.enabled:
                            batch = augment_batch(batch, kinds, cfg.augment)
                        logits = net(*batch)  # (B, K)
                        if step == 0:
                            check_logits(logits, self.class_names)
                        loss = self.objective.loss(logits.float(), y[idx], y[gidx], weight, world)
                    update(loss)
                    if self.ema is not None:
                        self.ema.update(self.model)
                    loss_sum.add_(loss.detach(), alpha=len(gidx) / world)
                    bar.step(step, loss, sel.monitor,
                             self.history[-1][sel.monitor] if self.history else math.nan)  # fmt: skip
                    faults.pause("batch")  # test hook (fault injection)
                    if stop.requested and not self.dist.active:  # the last checkpoint stands
                        raise signals.interrupted(stop, self.run_dir, epoch - 1, cfg.max_epochs)
                bar.close()
                train_time = time.perf_counter() - t0
                lr = opt.param_groups[-1]["lr"]  # the rate of the epoch's last step (the head's)

                # validate (rank 0; its row, so every decision, is broadcast), then select
                loss_sum = distributed.all_reduce_sum(loss_sum)
                row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum.item() / n_epoch}
                if not math.isfinite(row["train_loss"]):  # diverged: nothing after it is usable
                    raise MedtorchError(
                        f"expected a finite training loss, got {row['train_loss']} in epoch "
                        f"{epoch} (optim.lr {self.optim_cfg.lr:g}); lower optim.lr, set "
                        "trainer.grad_clip, or check the inputs for NaN"
                    )
                if self.dist.main:
                    row.update(self._valid_row(valid, vxs, vy, weight))
                row = distributed.broadcast(row)
                score = row[sel.monitor]
                if self.optim_cfg.scheduler == "cosine":
                    sched.step()
                elif self.optim_cfg.scheduler == "plateau" and not math.isnan(score):
                    sched.step(score)
                improved = sel.update(epoch, score)
                if improved:
                    self.best_state = {k: v.detach().to("cpu", copy=True)
                                       for k, v in self.eval_model.state_dict().items()}  # fmt: skip
                row["lr"] = lr
                row["epoch_time_s"] = time.perf_counter() - t0
                row["train_samples_per_s"] = n / train_time
                self.history.append(row)

                # checkpoint (crash-safe), log, and stop early or on a signal
                if self.checkpoint_dir is not None:
                    rngs = distributed.gather(ckpt.rng_state(self.shuffle_gen))
                    if self.dist.main:
                        wall = self.prior_wall_s + time.perf_counter() - t_start
                        resume_state.save_epoch(self, epoch, schedule_steps, scaler, rngs,
                                                improved, wall)  # fmt: skip
                if self.dist.main:
                    log_epoch(row, cfg.max_epochs, sel.monitor, improved, valid is not None)
                if trackers is not None:
                    trackers.log_epoch(row)
                if sel.stopped_early:
                    log_early_stop(epoch, sel.monitor, cfg.patience, sel.best_score, sel.best_epoch)
                    break
                if (
                    signals.stop_together(stop, self.dist.active, self.device)
                    and epoch < cfg.max_epochs
                ):
                    raise signals.interrupted(stop, self.run_dir, epoch, cfg.max_epochs)
        if trackers is not None:
            trackers.close()
        distributed.barrier()  # rank 0's last checkpoint is written before any process returns
        return self.history

    # -- the loop's pieces -------------------------------------------------------------------
    def _choose_cpu_kernels(self, saved: dict[str, Any] | None, sample: list[torch.Tensor]) -> None:
        """oneDNN or native convolutions and the thread count (a resumed run keeps its own)."""
        if saved is None or "cpu_mkldnn" not in saved:
            self.cpu_mkldnn, self.cpu_threads = pick_cpu_kernels(
                self.cfg.cpu_conv, self.cfg.num_threads, self.device, self.model, sample
            )
        if self.device.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
            log.info("CPU kernels: %s convolutions, %d thread(s)",
                     "oneDNN" if self.cpu_mkldnn else "native", self.cpu_threads)  # fmt: skip

    def _epoch_order(self, y: torch.Tensor, sample_w: torch.Tensor | None) -> torch.Tensor:
        """Row order of one epoch (N rows): a permutation, or with ``sampler: balanced`` N draws
        with replacement, each class equally likely. Drawn from the seeded CPU generator."""
        if sample_w is None:
            order = torch.randperm(len(y), generator=self.shuffle_gen)
        else:
            order = torch.multinomial(
                sample_w, len(y), replacement=True, generator=self.shuffle_gen
            )
        return order.to(self.device)

    def _valid_row(self, valid: ArrayDataset | None, vxs: list[torch.Tensor] | None,
                   vy: torch.Tensor | None, weight: torch.Tensor | None) -> dict[str, float]:  # fmt: skip
        return evaluation.valid_row(self, valid, vxs, vy, weight)

    # -- inference ---------------------------------------------------------------------------
    def autocast(self) -> Any:
        """Mixed precision on CUDA when ``trainer.amp``; else nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def tensors(self, ds: ArrayDataset) -> list[torch.Tensor]:
        """The dataset's inputs as tensors on the training device, in the model's order."""
        return [to_tensor(v, self.device) for v in ds.inputs.values()]

    _tensors = tensors  # the names the loop and older callers use
    _autocast = autocast

    def _logits(self, net: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
        return evaluation.logits(self, net, xs)

    def predict_proba(
        self, ds: ArrayDataset, checkpoint: str | None = None, tta: bool = False
    ) -> np.ndarray:
        """(N, K) probabilities (float64; softmax, or sigmoid per label), eval mode.

        ``tta``: average the probabilities over test-time views of the main input: a signal
        (N, C, T), its time reversal, sign flip and both; an image, its 8 flips and rotations
        (:func:`~medtorch.train.inputs.tta_views`); other kinds have no TTA views.

        ``checkpoint``: None uses the model's current weights; ``"best"`` / ``"last"`` load
        ``run_dir/checkpoints/<name>.pt`` (``"best"`` falls back to the in-memory best when
        there is no run folder, and to the current weights, with a warning, when no best
        exists yet); any other string is a checkpoint path. The trainer's model is left unchanged.
        """
        faults.pause("predict")  # test hook (fault injection)
        state = resume_state.weights_for(self, checkpoint) if checkpoint is not None else None
        return evaluation.probabilities(self, ds, state, tta)

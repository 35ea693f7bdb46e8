"""The one training loop: in-memory batches, early stopping, schedules, checkpoints, exact resume.

Read :meth:`Trainer.fit` top to bottom; it is the whole loop. Design choices:

- Data is already in memory (:class:`~medtorch.data.dataset.ArrayDataset`), so each input
  array becomes a tensor once, on the training device, and a batch is ``t[idx]`` for a slice
  of a shuffled index tensor. No DataLoader, no per-sample Python, no per-batch numpy copy.
  ``trainer.num_workers`` is accepted for config compatibility and ignored: there is no
  loading work to hand to worker processes.
- Floating inputs become float32, integer inputs (e.g. code indices for embeddings) int64,
  boolean inputs (masks) stay bool; labels are int64.
- The model returns logits; the loss is cross-entropy (with ``trainer.class_weights``).
  The same weighted loss is reported for the training and the validation set.
- Several processes launched by ``torchrun`` train one model with distributed data parallel
  (:mod:`medtorch.train.distributed`): the model is wrapped for the training forward pass in
  exactly one place (:meth:`Trainer._wrap`), each rank takes its share of every global batch
  of the shared epoch order, and rank 0 validates, decides and writes. Validation,
  prediction and checkpoints always use the unwrapped model.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from medtorch.config import OptimConfig, TrainerConfig
from medtorch.data.dataset import ArrayDataset
from medtorch.errors import ConfigError, DataError, SplitError, fmt
from medtorch.notebook import show_progress
from medtorch.train import checkpoint as ckpt
from medtorch.train import distributed
from medtorch.train.augment import augment_signals
from medtorch.train.parts import (
    HISTORY_COLUMNS,
    MONITORS,
    FastAdamStep,
    build_optimizer,
    build_scheduler,
    class_weights,
    mkldnn_enabled,
    pick_cpu_kernels,
    select_device,
    to_tensor,
    valid_metrics,
)

log = logging.getLogger("medtorch")


class Trainer:
    """Fit a classifier that returns logits on in-memory :class:`ArrayDataset` splits.

    After :meth:`fit` the model holds the weights of the *last* epoch; the best epoch's
    weights are in ``run_dir/checkpoints/best.pt`` (and in memory when ``run_dir`` is None)
    and are used by ``predict_proba(ds, checkpoint="best")``.
    Attributes: ``history``, ``best_epoch``, ``best_score``, ``stopped_early``, ``device``.
    """

    def __init__(
        self,
        model: nn.Module,
        optim: OptimConfig,
        trainer: TrainerConfig,
        run_dir: Path | None,
        class_names: list[str],
    ) -> None:
        self.optim_cfg, self.cfg = optim, trainer
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.class_names = list(class_names)
        if trainer.monitor not in MONITORS:
            raise ConfigError(
                fmt(
                    f"one of {list(MONITORS)}",
                    trainer.monitor,
                    "trainer.monitor",
                    "pick one of those names",
                )
            )
        if trainer.monitor == "epoch" and trainer.monitor_mode == "min":
            raise ConfigError(
                fmt("monitor_mode max or auto with trainer.monitor=epoch", trainer.monitor_mode,
                    "trainer.monitor_mode", "set it to auto (the last epoch is kept)")
            )  # fmt: skip
        if isinstance(trainer.class_weights, list) and len(trainer.class_weights) != len(
            self.class_names
        ):
            raise ConfigError(
                fmt(
                    f"{len(self.class_names)} weights (one per class)",
                    trainer.class_weights,
                    "trainer.class_weights",
                    "give one float per class, or none / balanced",
                )
            )
        self.dist = distributed.setup(trainer.device)
        self.device = select_device(trainer.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)  # one GPU per process
        self.model = model.to(self.device)
        self._net = self._wrap(self.model)
        use_amp = trainer.amp and self.device.type == "cuda"
        self.amp_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if use_amp
            else None
        )
        self.monitor = trainer.monitor
        self.mode: str = trainer.monitor_mode
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.stopped_early = False
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self._best_state: dict[str, torch.Tensor] | None = (
            None  # in-memory best when run_dir is None
        )
        self.cpu_mkldnn = bool(torch.backends.mkldnn.enabled)
        self.cpu_threads = torch.get_num_threads()
        self._resumed_cpu: tuple[bool, int] | None = None
        self.shuffle_gen = (
            torch.Generator()
        )  # CPU, so the batch order does not depend on the device

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The single place where the model gets wrapped for the training forward pass:
        DistributedDataParallel under torchrun, else the model itself."""
        return distributed.wrap(model, self.device, self.cfg.sync_batchnorm)

    @property
    def checkpoint_dir(self) -> Path | None:
        return self.run_dir / "checkpoints" if self.run_dir is not None else None

    @staticmethod
    def load_checkpoint(path: str | Path) -> dict[str, Any]:
        """Read a checkpoint dict onto the CPU; layout in :mod:`medtorch.train.checkpoint`."""
        return ckpt.load_checkpoint(path)

    # -- helpers -----------------------------------------------------------------------------
    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _tensors(self, ds: ArrayDataset) -> list[torch.Tensor]:
        return [to_tensor(v, self.device) for v in ds.inputs.values()]

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

    @torch.inference_mode()
    def _logits(self, net: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
        """(N, K) float32 logits in eval mode, in batches of ``eval_batch_size``."""
        was_training = net.training
        net.eval()
        bs, n = self.cfg.eval_batch_size, len(xs[0])
        out = []
        for s in range(0, n, bs):
            with self._autocast():
                out.append(net(*[x[s : s + bs] for x in xs]).float())
        net.train(was_training)
        return torch.cat(out) if out else torch.empty(0, len(self.class_names), device=self.device)

    def _valid_row(
        self,
        valid: ArrayDataset | None,
        vxs: list[torch.Tensor] | None,
        vy: torch.Tensor | None,
        weight: torch.Tensor | None,
    ) -> dict[str, float]:
        """The validation columns of one history row (NaN without a validation set)."""
        if valid is None or vxs is None or vy is None:
            return dict.fromkeys(HISTORY_COLUMNS[2:7], math.nan)
        vlogits = self._logits(self.model, vxs)  # (Nv, K), never through the DDP wrapper
        proba = torch.softmax(vlogits.double(), 1).cpu().numpy()
        return {
            "valid_loss": F.cross_entropy(vlogits, vy, weight=weight).item(),
            **valid_metrics(valid.y, proba),
        }

    def _seed(self) -> None:
        """Seed every RNG: the epoch order from ``seed`` (shared by all processes), dropout and
        augmentation from ``seed + rank`` (each process its own stream; rank 0 = one process)."""
        seed = self.cfg.seed
        own = seed + self.dist.rank
        random.seed(own)
        np.random.seed(own % 2**32)  # noqa: NPY002 (third-party code draws from it)
        torch.manual_seed(own)
        self.shuffle_gen.manual_seed(seed)
        if self.device.type == "cuda":
            os.environ.setdefault(
                "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
            )  # needed for deterministic cuBLAS
            torch.backends.cudnn.benchmark = not self.cfg.deterministic
        torch.use_deterministic_algorithms(self.cfg.deterministic, warn_only=True)

    def _state(
        self,
        epoch: int,
        since_best: int,
        schedule_steps: int,
        scaler: Any,
        rngs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The checkpoint dict; ``rngs``: every process's RNG state, rank order."""
        assert self.optimizer is not None
        return {
            "format": ckpt.CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "epochs_without_improvement": since_best,
            "stopped_early": self.stopped_early,
            "schedule_steps": schedule_steps,
            "cpu_mkldnn": self.cpu_mkldnn,
            "cpu_threads": self.cpu_threads,
            "history": self.history,
            "rng": rngs[0],
            "rng_ranks": rngs if len(rngs) > 1 else None,
            "world_size": self.dist.world,
            "monitor": self.monitor,
            "monitor_mode": self.mode,
            "class_names": self.class_names,
            "config": {
                "optim": self.optim_cfg.model_dump(mode="json"),
                "trainer": self.cfg.model_dump(mode="json"),
            },
        }

    def _write_history(self) -> None:
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "history.csv"
        tmp = path.with_name("history.csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(HISTORY_COLUMNS))
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(tmp, path)

    def _check_data(self, train: ArrayDataset, valid: ArrayDataset | None) -> None:
        if len(train) == 0:
            raise SplitError(
                "expected training rows, got an empty training set; "
                "check the split ratios and the task's cohort filters"
            )
        if valid is not None and len(valid) == 0:
            raise SplitError(
                "expected validation rows, got an empty validation set; "
                "give the valid split a non-zero ratio or pass valid=None"
            )
        for name, ds in (("train", train), ("valid", valid)):
            if ds is not None and ds.n_classes != len(self.class_names):
                raise DataError(
                    fmt(
                        f"{len(self.class_names)} classes {self.class_names}",
                        ds.class_names,
                        f"the {name} dataset",
                        "pass the class names of the dataset",
                    )
                )
        if valid is not None and list(valid.inputs) != list(train.inputs):
            raise DataError(
                fmt(
                    f"inputs {list(train.inputs)} (as in train)",
                    list(valid.inputs),
                    "the valid dataset",
                    "give both splits the same inputs",
                )
            )

    # -- the loop ----------------------------------------------------------------------------
    def fit(
        self, train: ArrayDataset, valid: ArrayDataset | None, resume: bool = False
    ) -> list[dict[str, Any]]:
        """Train; return the history (one dict per epoch, keys ``HISTORY_COLUMNS``).

        ``resume=True`` loads ``run_dir/checkpoints/last.pt`` (model, optimizer, scheduler,
        counters, history and every RNG) and continues exactly where that run stopped.
        """
        threads = torch.get_num_threads()
        deterministic = torch.are_deterministic_algorithms_enabled()
        try:
            return self._fit(train, valid, resume)
        finally:  # the thread count and determinism are process-wide: leave them as found
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)

    def _fit(
        self, train: ArrayDataset, valid: ArrayDataset | None, resume: bool = False
    ) -> list[dict[str, Any]]:
        """:meth:`fit` without restoring the process-wide torch settings."""
        cfg = self.cfg
        self._check_data(train, valid)
        if isinstance(cfg.num_threads, int):
            torch.set_num_threads(cfg.num_threads)
        self._seed()
        self.monitor = cfg.monitor
        if valid is None and self.monitor not in ("train_loss", "epoch"):
            log.info("no validation set: monitoring train_loss instead of %s", self.monitor)
            self.monitor = "train_loss"
        mode: str = cfg.monitor_mode
        if self.monitor != cfg.monitor:  # fell back to train_loss: always minimised
            mode = "min"
        elif mode == "auto":
            mode = "min" if "loss" in self.monitor else "max"
        self.mode = mode
        if self.monitor == "valid_auroc" and valid is not None and len(np.unique(valid.y)) < 2:
            raise ConfigError(
                fmt(
                    "a valid set with at least two classes to monitor valid_auroc",
                    valid.class_counts(),
                    "trainer.monitor",
                    "monitor valid_loss instead",
                )
            )

        # data -> tensors, once (the fast path: batches are index slices of these)
        n, bs = len(train), cfg.batch_size  # bs: the global batch, split across processes
        rank, world = self.dist.rank, self.dist.world
        distributed.check_batch_size(bs, world)
        n_epoch = n + (-n % world)  # rows per epoch, padded to divide across the processes
        xs, y = self._tensors(train), to_tensor(train.y, self.device)
        vxs = self._tensors(valid) if valid is not None else None
        vy = to_tensor(valid.y, self.device) if valid is not None else None
        w_np = class_weights(cfg, train.y, len(self.class_names))
        weight = (
            torch.as_tensor(w_np, dtype=torch.float32, device=self.device)
            if w_np is not None
            else None
        )
        sample_w = None
        if cfg.sampler == "balanced":  # each class drawn equally often on average
            counts = np.bincount(train.y, minlength=len(self.class_names))
            sample_w = torch.as_tensor(1.0 / counts[train.y], dtype=torch.float64)

        steps_per_epoch = math.ceil(n_epoch / bs)
        self.optimizer = opt = build_optimizer(self.model.parameters(), self.optim_cfg)
        self.scheduler = sched = build_scheduler(
            opt, self.optim_cfg, cfg.max_epochs, steps_per_epoch, mode
        )
        schedule_steps = {
            "cosine": cfg.max_epochs,
            "onecycle": cfg.max_epochs * steps_per_epoch,
        }.get(self.optim_cfg.scheduler, 0)
        scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        net = self._net

        start_epoch, since_best = 0, 0
        self.history, self.best_epoch, self.best_score, self.stopped_early = [], None, None, False
        self._best_state = None
        if resume:
            start_epoch, since_best = self._resume(schedule_steps, scaler)
            if self.stopped_early or start_epoch >= cfg.max_epochs:
                log.info(
                    "run already finished at epoch %d (stopped early: %s); nothing to train",
                    start_epoch,
                    self.stopped_early,
                )
                return self.history

        params = [p for g in opt.param_groups for p in g["params"]]
        opt_step = FastAdamStep(opt) if FastAdamStep.supported(opt) else opt.step

        if self._resumed_cpu is not None:
            self.cpu_mkldnn, self.cpu_threads = self._resumed_cpu
        else:
            idx = torch.arange(min(bs, n))
            self.cpu_mkldnn, self.cpu_threads = pick_cpu_kernels(
                cfg.cpu_conv, cfg.num_threads, self.device, self.model, [x[idx] for x in xs]
            )
        if self.device.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
            log.info(
                "CPU kernels: %s convolutions, %d thread(s)",
                "oneDNN" if self.cpu_mkldnn else "native",
                self.cpu_threads,
            )

        augment = cfg.augment.enabled
        with mkldnn_enabled(self.cpu_mkldnn):
            for epoch in range(start_epoch + 1, cfg.max_epochs + 1):
                t0 = time.perf_counter()
                net.train()
                order = distributed.pad_order(self._epoch_order(y, sample_w), world)
                loss_sum = torch.zeros((), device=self.device)
                bar = tqdm(
                    total=steps_per_epoch,
                    desc=f"epoch {epoch}/{cfg.max_epochs}",
                    leave=False,
                    disable=not (self.dist.main and show_progress(cfg.progress)),
                )
                for step, s in enumerate(range(0, n_epoch, bs)):
                    gidx = order[s : s + bs]  # the global batch
                    idx = distributed.shard_batch(gidx, rank, world)  # this process's rows
                    with self._autocast():
                        batch = [x[idx] for x in xs]
                        if augment:
                            batch[0] = augment_signals(batch[0], cfg.augment)
                        logits = net(*batch)  # (B, K)
                        if step == 0 and logits.shape[-1] != len(self.class_names):
                            raise ConfigError(
                                fmt(
                                    f"logits of shape (B, {len(self.class_names)})",
                                    tuple(logits.shape),
                                    "the model output",
                                    "set the model's n_classes to the number of classes",
                                )
                            )
                        loss = distributed.global_batch_loss(
                            logits.float(), y[idx], y[gidx], weight, world
                        )
                    for p in params:  # zero_grad(set_to_none=True) without its overhead
                        p.grad = None
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.unscale_(opt)
                    else:
                        loss.backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                    if scaler is not None:
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt_step()
                    if self.optim_cfg.scheduler == "onecycle":
                        sched.step()
                    loss_sum.add_(loss.detach(), alpha=len(gidx) / world)
                    if not bar.disable:
                        bar.update()
                        if step % 20 == 0:  # .item() syncs the device; only for the live display
                            prev = self.history[-1][self.monitor] if self.history else math.nan
                            bar.set_postfix(
                                {"loss": f"{loss.item():.4f}", self.monitor: f"{prev:.4f}"}
                            )
                bar.close()
                train_time = time.perf_counter() - t0
                lr = opt.param_groups[0]["lr"]  # the rate of the epoch's last step

                loss_sum = distributed.all_reduce_sum(loss_sum)
                row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum.item() / n_epoch}
                if self.dist.main:  # rank 0 validates; its row, so every decision, is broadcast
                    row.update(self._valid_row(valid, vxs, vy, weight))
                row = distributed.broadcast(row)
                score = row[self.monitor]
                if self.optim_cfg.scheduler == "cosine":
                    sched.step()
                elif self.optim_cfg.scheduler == "plateau" and not math.isnan(score):
                    sched.step(score)

                improved = not math.isnan(score) and (
                    self.best_score is None
                    or (score < self.best_score if mode == "min" else score > self.best_score)
                )
                if improved:
                    self.best_score, self.best_epoch, since_best = score, epoch, 0
                else:
                    since_best += 1
                self.stopped_early = (
                    cfg.patience is not None
                    and since_best >= cfg.patience
                    and epoch < cfg.max_epochs
                )
                row["lr"] = lr
                row["epoch_time_s"] = time.perf_counter() - t0
                row["train_samples_per_s"] = n / train_time
                self.history.append(row)

                if self.checkpoint_dir is not None:
                    rngs = distributed.gather(ckpt.rng_state(self.shuffle_gen))
                    if self.dist.main:
                        self._write_history()
                        last = self.checkpoint_dir / "last.pt"
                        state = self._state(epoch, since_best, schedule_steps, scaler, rngs)
                        ckpt.save_atomic(state, last)
                        if improved:
                            ckpt.copy_atomic(last, self.checkpoint_dir / "best.pt")
                elif improved:
                    self._best_state = {
                        k: v.detach().to("cpu", copy=True)
                        for k, v in self.model.state_dict().items()
                    }
                valid_part = f" valid_loss {row['valid_loss']:.4f}" if valid is not None else ""
                monitor_part = (
                    f" {self.monitor} {score:.4f}"
                    if self.monitor not in ("valid_loss", "epoch")
                    else ""
                )
                log.info(
                    "epoch %d/%d train_loss %.4f%s%s lr %.2e %.1fs%s",
                    epoch,
                    cfg.max_epochs,
                    row["train_loss"],
                    valid_part,
                    monitor_part if self.monitor != "train_loss" else "",
                    lr,
                    row["epoch_time_s"],
                    " *" if improved else "",
                )
                if self.stopped_early:
                    log.info(
                        "early stopping at epoch %d: no %s improvement for %d epochs (best %.4f at epoch %s)",
                        epoch,
                        self.monitor,
                        cfg.patience,
                        self.best_score if self.best_score is not None else math.nan,
                        self.best_epoch,
                    )
                    break
        distributed.barrier()  # rank 0's last checkpoint is written before any process returns
        return self.history

    def _resume(self, schedule_steps: int, scaler: Any) -> tuple[int, int]:
        if self.checkpoint_dir is None:
            raise ConfigError(
                fmt("a run folder to resume from", None, "run_dir", "pass the run's folder")
            )
        path = self.checkpoint_dir / "last.pt"
        if not path.is_file():
            raise ConfigError(
                fmt(
                    "a checkpoint to resume from",
                    str(path),
                    "run_dir",
                    "start without resume, or point to the run's folder",
                )
            )
        state = ckpt.load_checkpoint(path)
        if state["schedule_steps"] != schedule_steps:
            raise ConfigError(
                fmt(
                    f"a schedule of {state['schedule_steps']} steps as in the resumed run",
                    schedule_steps,
                    "trainer.max_epochs / trainer.batch_size",
                    "resume with the run's max_epochs, batch_size and training set",
                )
            )
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.dist.world:
            raise ConfigError(
                fmt(
                    f"the {saved_world} process(es) the run was trained with",
                    self.dist.world,
                    "the number of processes (torchrun --nproc-per-node)",
                    f"resume with {saved_world} process(es) for an exact continuation",
                )
            )
        assert self.optimizer is not None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        own_rng = state["rng_ranks"][self.dist.rank] if self.dist.active else state["rng"]
        ckpt.set_rng_state(own_rng, self.shuffle_gen)
        self.history = list(state["history"])
        self.best_epoch, self.best_score = state["best_epoch"], state["best_score"]
        self.stopped_early = bool(state["stopped_early"])
        if "cpu_mkldnn" in state:
            self._resumed_cpu = (bool(state["cpu_mkldnn"]), int(state["cpu_threads"]))
        log.info("resumed from %s at epoch %d", path, state["epoch"])
        return int(state["epoch"]), int(state["epochs_without_improvement"])

    # -- inference ---------------------------------------------------------------------------
    def predict_proba(
        self, ds: ArrayDataset, checkpoint: str | None = None, tta: bool = False
    ) -> np.ndarray:
        """(N, K) softmax probabilities (float64), eval mode, no gradients.

        ``tta``: for signals (N, C, T), average the probabilities over the input, its time
        reversal, its sign flip and both (test-time augmentation matching
        ``trainer.augment``'s reverse_time and flip_sign).

        ``checkpoint``: None uses the model's current weights; ``"best"`` / ``"last"`` load
        ``run_dir/checkpoints/<name>.pt`` (``"best"`` falls back to the in-memory best when
        there is no run folder, and to the current weights, with a warning, when no best
        exists yet); any other string is a checkpoint path. The trainer's model is left unchanged.
        """
        state: dict[str, torch.Tensor] | None = None
        if checkpoint is not None:
            path = (
                self.checkpoint_dir / f"{checkpoint}.pt"
                if checkpoint in ("best", "last") and self.checkpoint_dir is not None
                else Path(checkpoint)
            )
            if path.is_file():
                state = ckpt.load_checkpoint(path)["model"]
            elif checkpoint == "best" and self._best_state is not None:
                state = self._best_state
            elif checkpoint == "best":
                log.warning("no best checkpoint found; predicting with the current weights")
            else:
                raise ConfigError(
                    fmt(
                        "a checkpoint file",
                        str(path),
                        "predict_proba(checkpoint=...)",
                        "use best, last, None or an existing .pt path",
                    )
                )
        net = self.model  # never the DDP wrapper: prediction may run on rank 0 alone
        if state is not None:
            net = copy.deepcopy(self.model)
            net.load_state_dict(state)
        xs = self._tensors(ds)
        if not (tta and xs[0].ndim == 3):
            return torch.softmax(self._logits(net, xs).double(), 1).cpu().numpy()
        views = (xs[0], xs[0].flip(-1), -xs[0], -xs[0].flip(-1))
        probs = [torch.softmax(self._logits(net, [v, *xs[1:]]).double(), 1) for v in views]
        return (torch.stack(probs).mean(0)).cpu().numpy()

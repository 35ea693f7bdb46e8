"""Data-parallel training across processes with PyTorch's own ``torch.distributed`` (DDP).

Launch any training command with ``torchrun``; nothing else changes::

    torchrun --standalone --nproc-per-node 2 -m medtorch train seizure_resnet1d

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address;
:func:`setup` reads them and joins the process group (``gloo`` on the CPU, ``nccl`` on CUDA,
one GPU per process). Without them (a plain ``medtorch train``) it is a no-op and training
runs in one process, exactly as before.

What each process does (see :class:`~medtorch.train.trainer.Trainer`):

- every process builds the same in-memory dataset and the same seeded epoch order, and takes
  every ``world``-th row of each global batch (:func:`shard_batch`), so the ranks see
  disjoint rows and the same number of steps (no hang on the last batch);
- ``trainer.batch_size`` stays the *global* batch size: with the loss normalised over the
  global batch (:func:`global_batch_loss`) the averaged DDP gradient is the gradient of the
  single-process batch, so a recipe trains the same model on any number of processes
  (a test checks the weights against a one-process run);
- rank 0 alone validates, writes the run folder and checkpoints, and its decisions (best
  epoch, early stopping) are broadcast; each rank keeps its own dropout/augmentation RNG
  stream (seed + rank), saved in the checkpoint for an exact resume with the same number of
  processes.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from medtorch.errors import ConfigError, fmt

log = logging.getLogger("medtorch")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` processes, ``local_rank`` on its host."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes files and logs (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process trains together."""
        return self.world > 1


def _env_int(key: str, default: int) -> int:
    raw = os.environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            fmt("an integer", raw, f"the environment variable {key}", "launch with torchrun")
        ) from None


def current() -> DistInfo:
    """This process's place in the process group; one process when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return DistInfo()


def setup(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment (idempotent).

    ``device`` is ``trainer.device``: CUDA processes use ``nccl`` and GPU ``LOCAL_RANK``;
    everything else uses ``gloo``. Rank > 0 logs errors only (rank 0 says the rest once).
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    if not dist.is_available():
        raise ConfigError(
            fmt("a torch build with torch.distributed", torch.__version__, "WORLD_SIZE",
                "unset WORLD_SIZE or install a torch with distributed support")
        )  # fmt: skip
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    atexit.register(_teardown)
    info = current()
    if not info.main:
        log.setLevel(logging.ERROR)
    log.info(
        "distributed: %d processes (%s), global batch split across them",
        info.world,
        dist.get_backend(),
    )
    return info


def _teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_size(batch_size: int, world: int) -> int:
    """The per-process batch size; ``trainer.batch_size`` must split evenly across processes."""
    if batch_size % world:
        raise ConfigError(
            fmt(
                f"a multiple of the {world} processes",
                batch_size,
                "trainer.batch_size",
                f"set it to {max(world, batch_size // world * world)} or launch another "
                "number of processes (it is the global batch size)",
            )
        )
    return batch_size // world


def pad_order(order: torch.Tensor, world: int) -> torch.Tensor:
    """Repeat the first rows so the epoch divides evenly across ``world`` processes
    (as ``DistributedSampler`` does); unchanged for one process."""
    extra = -len(order) % world
    return torch.cat([order, order[:extra]]) if extra else order


def shard_batch(global_idx: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's rows of one global batch: every ``world``-th row from ``rank``."""
    return global_idx[rank::world] if world > 1 else global_idx


def global_batch_loss(
    logits: torch.Tensor,
    y_local: torch.Tensor,
    y_global: torch.Tensor,
    weight: torch.Tensor | None,
    world: int,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy whose DDP average over ranks is the global batch's weighted mean
    (``label_smoothing`` as in :func:`torch.nn.functional.cross_entropy`, whose weighted mean
    divides by the same total).

    DDP averages gradients over ranks; a rank-local mean would make that an average of
    per-rank weighted means, which differs from the single-process loss whenever class
    weights are set. Each rank knows the whole global batch's labels (every process holds
    the data), so it divides its sum by the global weight total, without communication.
    """
    ls = label_smoothing
    if world == 1:
        return F.cross_entropy(logits, y_local, weight=weight, label_smoothing=ls)
    total = weight[y_global].sum() if weight is not None else float(len(y_global))
    loss = F.cross_entropy(logits, y_local, weight=weight, reduction="sum", label_smoothing=ls)
    return loss * world / total


def wrap(model: torch.nn.Module, device: torch.device, sync_batchnorm: bool) -> torch.nn.Module:
    """Wrap ``model`` in DistributedDataParallel when several processes train; else as is."""
    info = current()
    if not info.active:
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError(
                fmt("CUDA devices for synchronised batch norm", device.type,
                    "trainer.sync_batchnorm", "set it to false on the CPU (torch supports it on GPUs only)")
            )  # fmt: skip
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all processes (in place); ``t`` itself for one process."""
    if current().active:
        dist.all_reduce(t)
    return t


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (pickled; for small values such as a history row)."""
    if not current().active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process; ``[obj]`` for one process."""
    info = current()
    if not info.active:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every process (no-op for one)."""
    if current().active:
        dist.barrier()

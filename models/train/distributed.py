"""Data-parallel training on one multi-GPU node: ``torchrun --nproc-per-node N``.

Every process runs the same :class:`~models.train.trainer.Trainer`; torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) is read by
``init_process_group(init_method="env://")``, never here. Backend NCCL on CUDA (one GPU
per process, ``cuda:<local rank>``), gloo on the CPU. The model is wrapped in
``DistributedDataParallel`` (its gradients averaged during ``backward``); training-only
modules outside it (the distiller's adapters) get theirs averaged by
:func:`average_gradients`. Each process reads its own share of every epoch
(``DistributedSampler``, seeded by seed and epoch, so a resume is exact). Only rank 0
evaluates and writes checkpoints and ``results.jsonl``. Not launched by torchrun, or
with one process, nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the group (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process trains."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: evaluates, checkpoints, writes results, logs progress."""
        return self.rank == 0


def _wants_cuda(device: str) -> bool:
    return device != "cpu" and torch.cuda.is_available()


def init_distributed(device: str) -> Dist:
    """Join torchrun's process group (once per process); single-process otherwise."""
    if not dist.is_available() or not dist.is_torchelastic_launched():
        return Dist()
    local = dist.get_node_local_rank(fallback_rank=0)
    if not dist.is_initialized():
        backend = "nccl" if _wants_cuda(device) else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend, init_method="env://")
    d = Dist(dist.get_rank(), dist.get_world_size(), local)
    log.info(
        "process %d of %d (local rank %d, backend %s)",
        d.rank,
        d.world,
        d.local_rank,
        dist.get_backend(),
    )
    return d


def resolve_device(name: str, d: Dist = Dist()) -> torch.device:
    """``auto`` → CUDA when available, else CPU; each process of a group on CUDA gets the
    GPU of its local rank (``cuda`` or ``auto``; an explicit ``cuda:K`` is kept)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and d.enabled:
        return torch.device("cuda", d.local_rank)
    return torch.device(name)


def wrap(model: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """``model`` in DDP when distributed (its weights broadcast from rank 0), else itself."""
    if not d.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def average_gradients(params: Iterable[nn.Parameter], d: Dist) -> None:
    """Average the gradients of parameters DDP does not own across the group."""
    if not d.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(d.world)


def average(values: dict[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    """The mean over the group of each value (e.g. an epoch's mean losses), so every
    process takes the same decisions from them (the adaptive loss weights)."""
    if not d.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist(), strict=True)}


def check_replicas_agree(model: nn.Module, d: Dist, device: torch.device) -> None:
    """Raise ``RuntimeError`` unless every process holds rank 0's weights (a gradient
    left out of the averaging makes the replicas drift apart)."""
    if not d.enabled:
        return
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        mine = torch.stack([flat.sum(), (flat * flat).sum()]).to(device)
    ref = mine.clone()
    dist.broadcast(ref, src=0)
    worst = torch.tensor([float((mine - ref).abs().max())], device=device)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    if float(worst) > 1e-6 * max(1.0, float(ref.abs().max())):
        raise RuntimeError(f"data-parallel replicas diverged (weight checksum off by {worst})")
    if d.main:
        log.info("the %d data-parallel replicas hold the same weights", d.world)


def barrier(d: Dist) -> None:
    """Wait for every process of the group."""
    if d.enabled:
        dist.barrier()


def finish(d: Dist) -> None:
    """Leave the process group (end of a command)."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``).

Each process holds a full copy of the objective, takes its share of every global batch,
runs its own sampler chains and replay buffer (own random stream), and the gradients of
each optimizer group are averaged across processes before every optimizer step, exactly
what ``DistributedDataParallel`` computes. nrf averages explicitly instead of wrapping the
networks in DDP's module: the samplers differentiate the energy with respect to its
input many times per training step, outside any parameter update, which DDP's gradient
hooks do not allow for. Rank 0 writes logs, plots and checkpoints; checkpoints include
every rank's random state and chains.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo(rank=0, world_size=1)


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU,
    NCCL on CUDA); a plain single process when ``WORLD_SIZE`` is absent or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


def shutdown(info: DistInfo, *, completed: bool) -> None:
    """Leave the process group that :func:`init_from_env` joined.

    After a completed run every rank first waits at a barrier, so no rank tears down its
    gloo / NCCL threads while another still talks to it (process exit with a live group
    can abort with ``terminate called without an active exception``). After an error the
    group is destroyed without the barrier, which the failed ranks would never reach.
    """
    if info.world_size == 1 or not dist.is_initialized():
        return
    if completed:
        dist.barrier()
    dist.destroy_process_group()


def average_gradients(params: Iterable[nn.Parameter], info: DistInfo) -> None:
    """All-reduce and average the gradients of ``params`` (in one flat buffer)."""
    if info.world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if info.world_size == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_metrics(metrics: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of each metric over ranks (the keys must agree)."""
    if info.world_size == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return {k: float(v) / info.world_size for k, v in zip(keys, values, strict=True)}


def gather(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` on every rank (in-process data between our own ranks)."""
    if info.world_size == 1:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on all ranks if ``flag`` is true on any."""
    if info.world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)

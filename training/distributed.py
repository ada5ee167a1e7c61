"""Running a trainer under ``torchrun`` (DistributedDataParallel), or alone.

``torchrun --nproc_per_node=N -m riffd.training train RECIPE`` sets RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT; ``setup()`` reads them and joins the process group
(gloo on the CPU, NCCL on CUDA). Without them it returns a single-process context, so
the same trainer runs either way. Each rank trains on its own shard of every epoch's
shuffled order (the order is the same on all ranks: same seed), DDP averages gradients,
so all ranks keep identical weights; only rank 0 writes checkpoints and plots.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
from torch import distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistContext:
    """Join the process group when torchrun's variables are set; else a 1-process context."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                      int(os.environ.get("LOCAL_RANK", 0)))
    if ctx.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """One GPU per process under torchrun (cuda:LOCAL_RANK); the CPU stays the CPU."""
    if device.type == "cuda" and ctx.active:
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The model wrapped in DDP when several processes train it; itself otherwise."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def shard(order: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's share of an epoch's order (as DistributedSampler with drop_last: every
    rank gets the same number of items, so every rank runs the same number of steps)."""
    if not ctx.active:
        return order
    per_rank = len(order) // ctx.world_size
    if per_rank == 0:
        raise ValueError(f"{len(order)} training windows cannot be shared by "
                         f"{ctx.world_size} processes; use more data or fewer processes")
    return order[ctx.rank:per_rank * ctx.world_size:ctx.world_size]


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if ctx.active:
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer.data, src=0)


def weight_digests(model: nn.Module, ctx: DistContext) -> list[str]:
    """Every rank's SHA-256 of its weights and buffers, in rank order (all ranks call it).

    Equal digests prove the ranks hold identical models; one rank alone gives one digest.
    """
    h = hashlib.sha256()
    for name, value in sorted(unwrap(model).state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()
    if not ctx.active:
        return [digest]
    gathered: list[str] = [""] * ctx.world_size
    dist.all_gather_object(gathered, digest)
    return gathered


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def main_first(ctx: DistContext, load: Callable[[], T]) -> T:
    """``load()`` on rank 0 first, then on the other ranks (which then read what rank 0
    cached). Parsing a corpus on every rank at once races in music21's own parse cache: one
    rank reads a pickle another is still writing ("incomplete or truncated stream")."""
    if not ctx.active:
        return load()
    if ctx.is_main:
        try:
            return load()
        finally:
            dist.barrier()                     # the others go on, even when rank 0 failed
    dist.barrier()
    return load()


def teardown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()

"""Minimal torchrun/DDP support: process-group setup, a DistributedSampler loader, rank-0-only checkpoints.

Only the single-process path is exercised by the tests; the multi-process path has not been run here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["DistContext", "barrier", "distributed_loader", "setup", "sync_buffers", "wrap"]


@dataclass(frozen=True)
class DistContext:
    """Where this process runs and whether it is one of several torchrun workers."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True for the process that writes checkpoints and reports."""
        return self.rank == 0


def pick_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """Resolve 'auto' to cuda (this rank's GPU) when available, else cpu."""
    if str(device) != "auto":
        return torch.device(device)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def setup(device: str | torch.device = "auto") -> DistContext:
    """Read torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK) and join the process group if WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels (no-op on CPU)
    if world <= 1:
        return DistContext(device=pick_device(device, 0))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(device=chosen, rank=dist.get_rank(), world_size=world)


def distributed_loader(loader: DataLoader, seed: int, device: torch.device) -> DataLoader:
    """The same loader over this rank's shard, shuffled per epoch by a DistributedSampler."""
    sampler = DistributedSampler(loader.dataset, shuffle=True, seed=seed)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, collate_fn=loader.collate_fn,
                      num_workers=loader.num_workers, pin_memory=device.type == "cuda")


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Wrap in DistributedDataParallel when several processes train together."""
    if not ctx.active:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for a single process)."""
    if ctx.active:
        dist.barrier()


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank so all ranks hold the checkpointed model."""
    if ctx.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

"""Multi-process training with torch.distributed, as started by ``torchrun``: process group, device per rank,
and DDP wrapping. One process (world size 1) needs none of it and runs unchanged.

``--batchSize`` is per process: the global batch is ``batchSize x world_size``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank among ``world_size`` processes, and its GPU index on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(opt: argparse.Namespace) -> DistContext:
    """Join the process group that torchrun describes in the environment (gloo on CPU, NCCL on CUDA).

    On CUDA each process takes the GPU of its local rank; ``opt.device`` is updated accordingly."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if opt.device.startswith("cuda"):
        opt.device = f"cuda:{ctx.local_rank}"
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if opt.device.startswith("cuda") else "gloo")
    return ctx


def shutdown_distributed() -> None:
    """Leave the process group (after a barrier, so no rank exits while another still writes)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_ddp(net: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP around ``net`` (its trainable parameters); batch norm becomes SyncBatchNorm on CUDA."""
    if device.type == "cuda" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)

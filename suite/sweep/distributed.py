"""Multi-process training of one cell under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU).

The runner starts a cell with ``python -m torch.distributed.run --standalone
--nproc-per-node N -m suite.sweep.cell SPEC`` when ``--nproc-per-node N > 1``. Every rank trains
on its own shard of the data (the global batch split evenly); gradients are averaged by
DDP. After the last step the process group closes; rank 0 alone then runs the after-training
hook (PRepBN's BN recalibration, with its own statistics), evaluates, deploys and writes the
result, so the running statistics a row reports are rank 0's. BN-family statistics are
per-process by default (the papers' setting); ``--sync-bn`` averages them across
processes in every training forward. DDP does not broadcast buffers here
(``broadcast_buffers=False``): broadcasting would overwrite each rank's running statistics
and UN's per-rank windows every step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn as nn

from suite.parts import Distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: Literal["none", "gloo", "nccl"] = "none"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def as_row(self, sync_bn: bool) -> Distributed:
        return {"world_size": self.world, "backend": self.backend,
                "bn_statistics": "syncbn" if sync_bn else "per-process"}


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group when started by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend: Literal["nccl", "gloo"] = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")), backend)


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    if info.world <= 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    # unused parameters are normal here: PRepBN's BN branch and eta sit idle during an LN/RMSNorm-only
    # warm-up, and a user's proposal may skip parameters on some steps
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                               find_unused_parameters=True)


def mean_across(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over all processes (the divergence check must agree everywhere)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

"""``torchrun`` / DistributedDataParallel: this process's rank, the process group, DDP wrapping and
the few collectives the trainers need. Rank 0 writes; a single process is rank 0 of 1."""

from __future__ import annotations

import gc
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from medsyn.device import resolve_device
from medsyn.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_env() -> DistInfo:
    """Rank and world size from the variables ``torchrun`` sets (none set: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"malformed torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK): {exc}") \
            from None
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_distributed(device_spec: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the ``torchrun`` process group if there is one; NCCL on GPUs, gloo on CPU."""
    info = distributed_env()
    device = resolve_device(device_spec, info.local_rank if info.enabled else None)
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return DistInfo(info.rank, info.world_size, info.local_rank, created), device


def shutdown_distributed(info: DistInfo) -> None:
    if info.initialized_here and torch_dist.is_initialized():
        # DDP wrappers still alive at interpreter exit can abort the process when they hold
        # gloo work of a destroyed group; collect them first
        gc.collect()
        torch_dist.destroy_process_group()


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, the module itself otherwise.

    Buffers are not broadcast: each rank keeps batch-norm statistics of its own batches (the
    usual data-parallel behaviour); rank 0's are the ones checkpointed.
    """
    if not info.enabled:
        return module
    ddp = nn.parallel.DistributedDataParallel
    kwargs = {"device_ids": [device.index] if device.type == "cuda" else None}
    # newer PyTorch renamed broadcast_buffers; syncing buffers once at construction is harmless
    # here (every rank builds identical batch-norm buffers)
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        kwargs["forward_sync_buffers"] = False
    else:
        kwargs["broadcast_buffers"] = False
    return ddp(module, **kwargs)


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def all_reduce_mean_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor /= info.world_size
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()

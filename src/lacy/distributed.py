"""Processes and devices: one code path for CPU, one GPU, and many GPUs or nodes under ``torchrun``.

``torchrun`` (launched inside the SLURM job by the training rule) sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; without them we are a single process. The model knows nothing of this module: the
training loop wraps it in DDP here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU: where a single-process job (evaluation, cascade) runs."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_runtime() -> Runtime:
    """Join the process group when launched by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def wrap_model(model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    if runtime.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [runtime.local_rank] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_mean(value: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    if runtime.world_size > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)  # AVG exists for NCCL only
        value /= runtime.world_size
    return value


def barrier(runtime: Runtime) -> None:
    if runtime.world_size > 1:
        dist.barrier()


def shutdown(runtime: Runtime) -> None:
    if runtime.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()

"""Distributed data parallel set-up from the ``torchrun`` environment.

Launch: ``torchrun --nproc_per_node N -m clinfusion.cli.main pretrain CONFIG --out DIR``.
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are read from the environment; the backend
is NCCL on CUDA and gloo on CPU. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from clinfusion.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (``cuda:local_rank``) when available, else CPU; ``cuda`` without a GPU
    -> ConfigError."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible: set device=auto or device=cpu")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup_distributed(device_pref: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def shutdown_distributed() -> None:
    """Destroy the process group, if any, before the interpreter exits (idempotent).

    Left to interpreter teardown, gloo's worker threads are sometimes destroyed while
    joinable and the rank dies with SIGABRT ("terminate called without an active exception")
    after the run has finished.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a python float over ranks (identity on one process)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is True on any rank (so every rank stops together)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return bool(t.item() > 0)

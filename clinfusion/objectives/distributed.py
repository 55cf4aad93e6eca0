"""Gathering embeddings across processes for global-batch contrastive losses.

Scaling convention used by every contrastive loss here (as open_clip with
``local_loss=True, gather_with_grad=True``): on each rank the loss is the mean over the
**local** rows scored against the **gathered global** columns; :func:`gather_with_grad`
sums, in backward, the gradients every rank computes for a row. DDP then *averages*
parameter gradients over ranks, so the averaged gradient equals the gradient of the
mean of the per-rank losses, which equals the single-process loss on the global batch.
Every rank must hold the same local batch size (use ``drop_last=True``).
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.distributed as dist
from torch import Tensor


def world_info() -> Tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in forward; in backward each rank receives the sum over ranks of the
    gradients for its own slice (all_reduce of the stacked gradients)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, world = world_info()
        ctx.rank = rank
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.stack(parts)  # [world, B, ...]

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank]


def gather_with_grad(x: Tensor) -> Tensor:
    """``x [B, ...]`` from every rank -> ``[world * B, ...]`` (rank order), differentiable.

    Identity when torch.distributed is not initialised or the world size is 1.
    """
    _, world = world_info()
    if world == 1:
        return x
    return _GatherWithGrad.apply(x).flatten(0, 1)


def gather_no_grad(x: Tensor) -> Tensor:
    """Like :func:`gather_with_grad` without autograd (masks, counts). Bool is kept bool."""
    _, world = world_info()
    if world == 1:
        return x
    y = x.to(torch.float32) if x.dtype == torch.bool else x
    parts = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(parts, y.contiguous())
    out = torch.cat(parts)
    return out.bool() if x.dtype == torch.bool else out


def local_labels(batch: int, device: torch.device) -> Tensor:
    """Global column index of each local row: ``rank * B + arange(B)``."""
    rank, _ = world_info()
    return torch.arange(batch, device=device) + rank * batch

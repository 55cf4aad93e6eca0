"""Optimiser and learning-rate schedule: AdamW (Loshchilov & Hutter 2019) with linear
warm-up then cosine decay to zero (Loshchilov & Hutter 2017, SGDR)."""

from __future__ import annotations

import math
from typing import Iterable, List

import torch
from torch import nn


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): ``(step+1)/warmup`` during
    warm-up, then ``0.5 (1 + cos(pi * progress))``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(module: nn.Module, weight_decay: float) -> List[dict]:
    """No weight decay on biases, norms, embeddings of size-1 dims and scalars (common practice)."""
    decay, no_decay = [], []
    for _, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(params: Iterable, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` over :func:`warmup_cosine` (stepped once per optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup_steps, total_steps))

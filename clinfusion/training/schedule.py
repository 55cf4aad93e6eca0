"""Optimiser and learning-rate schedule shared by pretraining and fine-tuning.

AdamW (Loshchilov & Hutter 2019) over :func:`param_groups` (no weight decay on norms,
biases and other 1-d parameters; optional learning rate per sub-module), with linear
warm-up then cosine decay to zero (Loshchilov & Hutter 2017, SGDR) from
``transformers.get_cosine_schedule_with_warmup``.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def no_decay_names(module: nn.Module) -> set:
    """Names of the parameters that get no weight decay: biases, every parameter of a
    normalisation layer, and any parameter with at most one dimension (scales, tokens'
    1-d offsets, the CLIP logit scale)."""
    out = set()
    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if isinstance(mod, NORM_TYPES) or p_name.endswith("bias") or p.ndim <= 1:
                out.add(full)
    return out


def param_groups(module: nn.Module, weight_decay: float,
                 lr_by_prefix: Optional[Dict[str, float]] = None) -> List[dict]:
    """AdamW parameter groups of the trainable parameters of ``module``.

    Args:
        weight_decay: applied to every parameter but those of :func:`no_decay_names`.
        lr_by_prefix: optional ``{name prefix: learning rate}`` (e.g. ``{"model.model.": 1e-4}``
            for discriminative fine-tuning; Howard & Ruder 2018); the first matching prefix wins,
            other parameters use the optimizer's default ``lr``.

    Returns:
        non-empty groups ``{"params", "weight_decay"[, "lr"]}``, decayed ones first.
    """
    skip = no_decay_names(module)
    groups: Dict[tuple, List[nn.Parameter]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        lr = next((v for k, v in (lr_by_prefix or {}).items() if name.startswith(k)), None)
        groups.setdefault((name in skip, lr), []).append(p)
    out = []
    for (no_decay, lr), params in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0.0)):
        g = {"params": params, "weight_decay": 0.0 if no_decay else weight_decay}
        if lr is not None:
            g["lr"] = lr
        out.append(g)
    return out


def build_optimizer(params: Iterable, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps``
    (``transformers.get_cosine_schedule_with_warmup``; stepped once per optimizer step)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, warmup_steps, max(total_steps, 1))

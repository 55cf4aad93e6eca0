"""A small supervised loop shared by the probe heads, full fine-tuning and baselines.

AdamW (Loshchilov & Hutter 2019) with one learning rate per parameter group and a
cosine schedule; the loss comes from :func:`clinfusion.downstream.task.loss_fn`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Tuple

import numpy as np
import torch

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.task import loss_fn, to_probs
from clinfusion.errors import TrainingError

Batches = Callable[[int], Iterable[Tuple[Any, torch.Tensor]]]


def train_loop(module: torch.nn.Module, param_groups: List[Dict[str, Any]], batches: Batches,
               forward: Callable[[Any], torch.Tensor], task: str, epochs: int, weight_decay: float = 0.0,
               name: str = "model") -> torch.nn.Module:
    """Optimise ``module`` for ``epochs`` passes of ``batches(epoch)`` (``(inputs, y)`` pairs).

    ``forward(inputs) -> logits [B, K_out]``. A non-finite loss raises
    :class:`~clinfusion.errors.TrainingError` naming the model and the step.
    """
    groups = [g for g in param_groups if any(p.requires_grad for p in g["params"])]
    for g in groups:
        g["params"] = [p for p in g["params"] if p.requires_grad]
    if not groups:
        return module
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    module.train()
    step = 0
    for epoch in range(epochs):
        for g, lr in zip(opt.param_groups, base):  # cosine decay per epoch
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
        for inputs, y in batches(epoch):
            loss = loss_fn(forward(inputs), y, task)
            if not torch.isfinite(loss):
                raise TrainingError(f"{name}: loss is {loss.item()} at epoch {epoch + 1}, step {step}: "
                                    f"lower finetune.lr or check the features for extreme values")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            opt.step()
            step += 1
    module.eval()
    return module


def batch_targets(data: FinetuneData, rows: np.ndarray) -> torch.Tensor:
    """Targets of cohort ``rows`` on the data's device."""
    return torch.as_tensor(data.y[rows], device=data.device)


def train_on_batches(module: torch.nn.Module, param_groups: List[Dict[str, Any]], data: FinetuneData,
                     rows: np.ndarray, forward: Callable[[Dict[str, Any]], torch.Tensor], task: str,
                     epochs: int, weight_decay: float, seed: int, name: str) -> torch.nn.Module:
    """:func:`train_loop` over shuffled cohort batches of ``rows``."""
    def batches(epoch: int):
        for batch, idx in data.batches(rows, shuffle=True, seed=seed + epoch):
            yield batch, batch_targets(data, idx)

    return train_loop(module, param_groups, batches, forward, task, epochs, weight_decay, name)


@torch.no_grad()
def predict_on_batches(module: torch.nn.Module, data: FinetuneData, rows: np.ndarray,
                       forward: Callable[[Dict[str, Any]], torch.Tensor], task: str,
                       variant: str = "all") -> np.ndarray:
    """Probabilities ``[len(rows), K_out]`` in row order."""
    module.eval()
    out = [to_probs(forward(b), task) for b, _ in data.batches(rows, variant)]
    return np.concatenate(out) if out else np.zeros((0, 1))

"""Classification head layers on an embedding, by name: ``HEAD_LAYERS.create(name, in_dim, out_dim, hidden)``.

(The fine-tuning *models* that use them, ``finetune.heads``, are registered in
:mod:`clinfusion.downstream.models`.)"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clinfusion.registry import Registry

HEAD_LAYERS = Registry("classification head layer")


@HEAD_LAYERS.register("linear")
def linear_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.0) -> nn.Module:
    """``[B, in] -> [B, out]`` (linear probe)."""
    return nn.Linear(in_dim, out_dim)


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature, ``[B, D] -> [B, D]``; ``mean`` / ``std`` are buffers (saved
    with the weights) set once from the training rows by :meth:`fit`, like the linear probe's scaler."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: Tensor) -> "Standardize":
        """``x [N, D]``: the training embeddings (a constant feature keeps std 1)."""
        std = x.std(dim=0, unbiased=False)
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


@HEAD_LAYERS.register("mlp")
def mlp_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.1) -> nn.Module:
    """``[B, in] -> standardised -> hidden -> [B, out]`` (``head[0]``: :class:`Standardize`)."""
    return nn.Sequential(Standardize(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))

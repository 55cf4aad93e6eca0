"""Classification heads on the fused embedding, by name: ``HEADS.create(name, in_dim, out_dim, hidden)``."""

from __future__ import annotations

from torch import nn

from clinfusion.registry import Registry

HEADS = Registry("classification head")


@HEADS.register("linear")
def linear_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.0) -> nn.Module:
    """``[B, in] -> [B, out]`` (linear probe)."""
    return nn.Linear(in_dim, out_dim)


@HEADS.register("mlp")
def mlp_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.1) -> nn.Module:
    """``[B, in] -> hidden -> [B, out]``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

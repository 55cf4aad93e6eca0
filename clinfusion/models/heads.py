"""Classification head layers on an embedding, by name: ``HEAD_LAYERS.create(name, in_dim, out_dim, hidden)``.

(The fine-tuning *models* that use them, ``finetune.heads``, are registered in
:mod:`clinfusion.downstream.models`.)"""

from __future__ import annotations

from torch import nn

from clinfusion.registry import Registry

HEAD_LAYERS = Registry("classification head layer")


@HEAD_LAYERS.register("linear")
def linear_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.0) -> nn.Module:
    """``[B, in] -> [B, out]`` (linear probe)."""
    return nn.Linear(in_dim, out_dim)


@HEAD_LAYERS.register("mlp")
def mlp_head(in_dim: int, out_dim: int, hidden: int = 128, dropout: float = 0.1) -> nn.Module:
    """``[B, in] -> hidden -> [B, out]``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))

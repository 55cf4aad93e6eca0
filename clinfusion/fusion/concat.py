"""Concatenation fusion ("late fusion" by feature concatenation, e.g. Huang et al. 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clinfusion.config.schema import FusionConfig
from clinfusion.fusion.base import FUSIONS, Fusion


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """``[img; tab] [B, Di+Dt]`` -> Linear -> GELU -> Linear -> ``[B, dim]``."""

    def __init__(self, cfg: FusionConfig, image_dim: int, table_dim: int) -> None:
        super().__init__(image_dim, table_dim, cfg.dim)
        self.mlp = nn.Sequential(nn.Linear(image_dim + table_dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        img, tab = self.fill_missing(img, tab, modality_mask)
        return self.mlp(torch.cat([img, tab], dim=1))

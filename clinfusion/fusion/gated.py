"""Gated fusion: the Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units
for Information Fusion")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clinfusion.config.schema import FusionConfig
from clinfusion.fusion.base import FUSIONS, Fusion


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """``h_i = tanh(W_i img)``, ``h_t = tanh(W_t tab)``, per-dimension gate
    ``z = sigmoid(W_z [img; tab])`` ``[B, dim]``, output ``z * h_i + (1 - z) * h_t`` ``[B, dim]``.
    """

    def __init__(self, cfg: FusionConfig, image_dim: int, table_dim: int) -> None:
        super().__init__(image_dim, table_dim, cfg.dim)
        self.proj_image = nn.Linear(image_dim, cfg.dim)
        self.proj_table = nn.Linear(table_dim, cfg.dim)
        self.gate = nn.Linear(image_dim + table_dim, cfg.dim)

    def gates(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        """Image share per dimension ``z [B, dim]`` in (0, 1)."""
        img, tab = self.fill_missing(img, tab, modality_mask)
        return torch.sigmoid(self.gate(torch.cat([img, tab], dim=1)))

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        img, tab = self.fill_missing(img, tab, modality_mask)
        z = torch.sigmoid(self.gate(torch.cat([img, tab], dim=1)))
        return z * torch.tanh(self.proj_image(img)) + (1 - z) * torch.tanh(self.proj_table(tab))

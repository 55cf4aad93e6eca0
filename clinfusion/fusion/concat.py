"""Concatenation fusion ("late fusion" by feature concatenation, e.g. Huang et al. 2020), with a
linear skip path so an untrained or lightly trained fusion keeps what each encoder says."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clinfusion.config.schema import FusionConfig
from clinfusion.fusion.base import FUSIONS, Fusion


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """``x = [img; tab] [B, Di+Dt]`` -> ``skip(x) + mlp(x)`` ``[B, dim]``.

    ``mlp`` is Linear -> GELU -> Linear (the interactions); ``skip`` is a bias-free linear map
    initialised to an isometry (identity padded with zeros when ``dim >= Di+Dt``, else an
    orthogonal projection), so at initialisation the fused embedding still holds both
    embeddings (a random MLP alone loses part of them) and a linear probe on it starts from
    what a probe on the concatenation sees. A residual connection, as in transformer blocks.
    """

    def __init__(self, cfg: FusionConfig, image_dim: int, table_dim: int) -> None:
        super().__init__(image_dim, table_dim, cfg.dim)
        n_in = image_dim + table_dim
        self.mlp = nn.Sequential(nn.Linear(n_in, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        self.skip = nn.Linear(n_in, cfg.dim, bias=False)
        with torch.no_grad():
            if cfg.dim >= n_in:
                nn.init.eye_(self.skip.weight)
            else:
                nn.init.orthogonal_(self.skip.weight)

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        img, tab = self.fill_missing(img, tab, modality_mask)
        x = torch.cat([img, tab], dim=1)
        return self.skip(x) + self.mlp(x)

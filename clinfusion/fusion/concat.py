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
    orthogonal projection), and the mlp's last layer starts at zero (a zero-initialised
    residual branch, as in Goyal et al. 2017 and Fixup), so at initialisation the fused
    embedding IS the (isometrically mapped) concatenation: a linear probe on an untrained fusion
    sees exactly what a probe on the concatenation sees, and training (ITM, masked_fused,
    fine-tuning) grows the interactions from there. A random last layer added noise on the skip
    path: planted 3D cohort, demo settings, seeds 100-102, validation AUROC of the fused probe
    0.914 -> 0.919 at 100% labels and 0.756 -> 0.793 at 10% with this init (the numbers and the
    command: the message of the commit that made it).
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
            nn.init.zeros_(self.mlp[-1].weight)  # the first layer gets gradients once this one moves
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        img, tab = self.fill_missing(img, tab, modality_mask)
        x = torch.cat([img, tab], dim=1)
        return self.skip(x) + self.mlp(x)

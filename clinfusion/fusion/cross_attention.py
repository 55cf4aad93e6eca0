"""Cross-attention fusion: the two modality embeddings as a 2-token sequence attending to
each other (a transformer block, Vaswani et al. 2017; as in multimodal bottleneck /
token fusion, e.g. Nagrani et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clinfusion.config.schema import FusionConfig
from clinfusion.errors import ConfigError
from clinfusion.fusion.base import FUSIONS, Fusion


@FUSIONS.register("cross_attention")
class CrossAttentionFusion(Fusion):
    """Tokens ``[B, 2, dim]`` (projected image, projected table, + modality embeddings) ->
    pre-norm multi-head attention with ``key_padding_mask = ~modality_mask`` -> MLP ->
    mean over present tokens -> ``[B, dim]``. A row missing both modalities attends over
    the two learned missing tokens (never an all-masked softmax), so stays finite.
    """

    def __init__(self, cfg: FusionConfig, image_dim: int, table_dim: int) -> None:
        super().__init__(image_dim, table_dim, cfg.dim)
        if cfg.dim % cfg.num_heads:
            raise ConfigError(f"model.fusion.num_heads: {cfg.num_heads} does not divide model.fusion.dim {cfg.dim}")
        self.proj_image = nn.Linear(image_dim, cfg.dim)
        self.proj_table = nn.Linear(table_dim, cfg.dim)
        self.modality = nn.Parameter(torch.randn(2, cfg.dim) * 0.02)
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 2 * cfg.dim), nn.GELU(), nn.Linear(2 * cfg.dim, cfg.dim))
        self.out_norm = nn.LayerNorm(cfg.dim)

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:
        img, tab = self.fill_missing(img, tab, modality_mask)
        x = torch.stack([self.proj_image(img), self.proj_table(tab)], dim=1) + self.modality.to(img.dtype)
        present = modality_mask.to(torch.bool)
        present = present | ~present.any(dim=1, keepdim=True)  # none present: use both missing tokens
        h = self.norm1(x)
        x = x + self.attn(h, h, h, key_padding_mask=~present, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        w = present.to(x.dtype).unsqueeze(-1)
        return self.out_norm((x * w).sum(dim=1) / w.sum(dim=1))

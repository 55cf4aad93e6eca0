"""The joint model: image encoder + tabular encoder, projections for alignment, fusion.

``MultimodalModel(cfg.model, spatial_dims, in_channels, schema, image_size)``

Shapes (B = batch):
    image ``[B, C, *S]`` -> ``image_emb [B, Di]`` -> ``image_proj [B, P]``
    table tensors (batch layout) -> ``table_emb [B, Dt]`` -> ``table_proj [B, P]``
    ``fused = fusion(image_emb, table_emb, modality_mask [B, 2]) -> [B, F]``

``P = cfg.projection_dim`` (the CLIP space), ``F = cfg.fusion.dim``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from clinfusion.config.schema import ModelConfig
from clinfusion.datasets.batch import TABLE_KEYS
from clinfusion.encoders.image import create_image_encoder
from clinfusion.encoders.schema import TableSchema
from clinfusion.encoders.tabular import TabularEncoder
from clinfusion.fusion import create_fusion
from clinfusion.objectives import LogitScale



def projection(in_dim: int, out_dim: int) -> nn.Module:
    """Two-layer projection head (SimCLR/CLIP style): ``[B, in] -> [B, out]``."""
    return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))


class MultimodalModel(nn.Module):
    """Joint image + table encoder (see the module docstring for shapes).

    Args:
        cfg: the ``model`` section (encoders, fusion, ``projection_dim``).
        spatial_dims: 2 or 3; in_channels: ``C``; schema: the table's
            :class:`~clinfusion.encoders.schema.TableSchema`; image_size: ``S`` (ViT patching).
        init_temperature, max_logit_scale: the learnable CLIP logit scale (Radford et al. 2021).

    The projection heads follow SimCLR/CLIP (Chen et al. 2020; Radford et al. 2021); the
    fusion replaces an absent modality by a learned embedding (``modality_mask``).
    """

    def __init__(self, cfg: ModelConfig, spatial_dims: int, in_channels: int, schema: TableSchema,
                 image_size: Optional[Sequence[int]] = None, init_temperature: float = 0.07,
                 max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.spatial_dims, self.in_channels = spatial_dims, in_channels
        self.schema = schema
        self.image_encoder = create_image_encoder(cfg.image_encoder, spatial_dims, in_channels, image_size)
        self.table_encoder = TabularEncoder(cfg.tabular_encoder, schema)
        di, dt = self.image_encoder.embed_dim, self.table_encoder.embed_dim
        self.image_proj = projection(di, cfg.projection_dim)
        self.table_proj = projection(dt, cfg.projection_dim)
        self.fusion = create_fusion(cfg.fusion, di, dt)
        self.logit_scale = LogitScale(init_temperature, max_logit_scale)
        self.fused_dim = cfg.fusion.dim

    # ------------------------------------------------------------------ encoders
    def encode_image(self, image: Tensor) -> Tensor:
        """``[B, C, *S] -> [B, Di]``."""
        return self.image_encoder.forward_features(image)

    def encode_table_tensors(self, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                             omics: Tensor, omics_missing: Tensor) -> Tensor:
        """Table tensors of the batch layout -> ``[B, Dt]`` (CLS output)."""
        return self.table_encoder(num, num_missing, cat, cat_missing, omics, omics_missing)

    def encode_table(self, batch: Dict[str, Tensor]) -> Tensor:
        return self.encode_table_tensors(*(batch[k] for k in TABLE_KEYS))

    # ------------------------------------------------------------------ forward
    def forward_tensors(self, image: Tensor, num: Tensor, num_missing: Tensor, cat: Tensor,
                        cat_missing: Tensor, omics: Tensor, omics_missing: Tensor,
                        modality_mask: Tensor) -> Dict[str, Tensor]:
        img = self.encode_image(image)
        tab = self.encode_table_tensors(num, num_missing, cat, cat_missing, omics, omics_missing)
        return {
            "image_emb": img,
            "table_emb": tab,
            "image_proj": self.image_proj(img),
            "table_proj": self.table_proj(tab),
            "fused": self.fusion(img, tab, modality_mask.bool()),
        }

    def forward(self, batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Batch dict (see :mod:`clinfusion.datasets.batch`) -> embeddings dict."""
        return self.forward_tensors(batch["image"], *(batch[k] for k in TABLE_KEYS), batch["modality_mask"])

    def fuse(self, batch: Dict[str, Tensor]) -> Tensor:
        """Fused embedding only: ``[B, F]``."""
        img = self.encode_image(batch["image"])
        tab = self.encode_table(batch)
        return self.fusion(img, tab, batch["modality_mask"].bool())

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.image_encoder.set_grad_checkpointing(enable)
        self.table_encoder.set_grad_checkpointing(enable)

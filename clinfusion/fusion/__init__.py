"""Fusion of the image and table embeddings: ``create_fusion(cfg, image_dim, table_dim)``.

Every fusion: ``forward(img [B, Di], tab [B, Dt], modality_mask [B, 2] bool) -> [B, cfg.dim]``.
"""

from __future__ import annotations

from typing import List

from clinfusion.config.schema import FusionConfig
from clinfusion.fusion import concat, cross_attention, gated  # noqa: F401  (register)
from clinfusion.fusion.base import FUSIONS, Fusion
from clinfusion.fusion.dropout import ModalityDropout

__all__ = ["FUSIONS", "Fusion", "ModalityDropout", "create_fusion", "list_fusions"]


def create_fusion(cfg: FusionConfig, image_dim: int, table_dim: int) -> Fusion:
    """Build fusion ``cfg.name`` (``concat`` / ``gated`` / ``cross_attention``)."""
    return FUSIONS.create(cfg.name, cfg, image_dim, table_dim)


def list_fusions() -> List[str]:
    """Registered fusion names, sorted."""
    return FUSIONS.names()

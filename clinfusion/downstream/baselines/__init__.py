"""Baselines trained on the same splits as the heads (registry :data:`BASELINES`)."""

from clinfusion.downstream.baselines import fused_scratch, image_only, tabular_lgbm  # noqa: F401  (register)
from clinfusion.downstream.heads.base import BASELINES

__all__ = ["BASELINES"]

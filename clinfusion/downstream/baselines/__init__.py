"""Baselines trained on the same splits as the heads (registry :data:`BASELINES`)."""

from clinfusion.downstream import neural  # noqa: F401  (registers image_only, fused_scratch)
from clinfusion.downstream.baselines import tabular_lgbm  # noqa: F401  (register)
from clinfusion.downstream.heads.base import BASELINES

__all__ = ["BASELINES"]

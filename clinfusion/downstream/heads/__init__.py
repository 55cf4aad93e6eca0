"""Fine-tuning heads chosen by ``finetune.heads`` (registry :data:`HEADS`)."""

from clinfusion.downstream import neural  # noqa: F401  (registers mlp, full, image_only, fused_scratch)
from clinfusion.downstream.heads import lightgbm, probe  # noqa: F401  (register)
from clinfusion.downstream.heads.base import BASELINES, HEADS, HeadContext, Predictor

__all__ = ["HEADS", "BASELINES", "HeadContext", "Predictor"]

"""Fine-tuning heads chosen by ``finetune.heads`` (registry :data:`HEADS`)."""

from clinfusion.downstream.heads import full, lightgbm, mlp, probe  # noqa: F401  (register)
from clinfusion.downstream.heads.base import BASELINES, HEADS, HeadContext, Predictor

__all__ = ["HEADS", "BASELINES", "HeadContext", "Predictor"]

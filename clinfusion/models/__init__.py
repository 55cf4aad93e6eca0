"""Models: the multimodal model, the pretraining task and the fused classifier.

Imports torch, MONAI and transformers only. ``load_pretrained`` lives in
:mod:`clinfusion.models.io` (it reads configs and preprocessing, hence pandas).
"""

from clinfusion.models.classifier import INPUT_KEYS, FusedClassifier
from clinfusion.models.heads import HEADS
from clinfusion.models.multimodal import TABLE_KEYS, MultimodalModel
from clinfusion.models.pretrain_task import PretrainTask

__all__ = ["FusedClassifier", "HEADS", "INPUT_KEYS", "MultimodalModel", "PretrainTask", "TABLE_KEYS"]

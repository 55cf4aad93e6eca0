"""Models: the multimodal model, the pretraining task and the fused classifier.

Imports torch, MONAI and transformers only. ``load_pretrained`` lives in
:mod:`clinfusion.models.io` (it reads configs and preprocessing, hence pandas).
"""

from clinfusion.datasets.batch import INPUT_KEYS, TABLE_KEYS
from clinfusion.models.classifier import FusedClassifier
from clinfusion.models.heads import HEAD_LAYERS
from clinfusion.models.multimodal import MultimodalModel
from clinfusion.models.pretrain_task import PretrainTask

__all__ = ["FusedClassifier", "HEAD_LAYERS", "INPUT_KEYS", "MultimodalModel", "PretrainTask", "TABLE_KEYS"]

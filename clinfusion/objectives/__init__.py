"""Self-supervised objectives; each loss is an ``nn.Module`` returning ``{"<name>_loss": tensor}``.

Contrastive losses take negatives from the global batch via :func:`gather_with_grad`;
the per-rank loss is the mean over local rows against global columns, and DDP's
gradient averaging then reproduces the single-process global-batch gradient (see
:mod:`clinfusion.objectives.distributed`).
"""

from clinfusion.objectives.byol import EMA, BYOLLoss
from clinfusion.objectives.clip import ClipLoss, LogitScale
from clinfusion.objectives.distributed import gather_with_grad, world_info
from clinfusion.objectives.itm import ItmLoss, hardest_negatives
from clinfusion.objectives.mae import MAELoss, patchify, random_masking
from clinfusion.objectives.masked_features import MaskedFeatureLoss, mask_features
from clinfusion.objectives.masked_fused import MaskedFusedLoss
from clinfusion.objectives.scarf import ScarfLoss, scarf_corrupt
from clinfusion.objectives.simclr import NTXentLoss

__all__ = [
    "BYOLLoss", "ClipLoss", "EMA", "ItmLoss", "LogitScale", "MAELoss", "MaskedFeatureLoss", "MaskedFusedLoss",
    "NTXentLoss", "ScarfLoss", "gather_with_grad", "hardest_negatives", "mask_features", "patchify",
    "random_masking", "scarf_corrupt", "world_info",
]

"""What every explanation method shares: the model view, forward arguments, targets.

Attribution methods never see a :class:`~clinfusion.config.schema.RunConfig` or a data
loader; they see an :class:`Explainable` (a classifier with the plain-tensor face
``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)
-> logits [B, K]`` plus a few handles into it) and a batch dict in the layout of
:mod:`clinfusion.datasets.batch`.

Targets: binary (``K = 1``) explains the single logit (evidence for the positive class);
multiclass and multilabel explain the highest-scoring output per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from clinfusion.datasets.batch import INPUT_KEYS as FORWARD_KEYS  # noqa: E402  (the one batch-key tuple)


@dataclass
class Explainable:
    """A classifier and the handles the attribution methods need.

    Attributes:
        model: ``nn.Module`` with ``forward(*FORWARD_KEYS) -> logits [B, K]``, in eval mode.
        task: ``binary`` | ``multiclass`` | ``multilabel`` (how logits become probabilities).
        image_encoder: the sub-module encoding images (Grad-CAM layers are looked up here
            first); None when the model has no image path.
        default_cam_layer: module path inside ``image_encoder`` used when no layer is configured.
        token_layer: sub-module whose output is the table token embeddings ``[B, T(+offset), H]``
            (the target of layer Integrated Gradients); None = no tabular attribution.
        token_offset: leading tokens of ``token_layer``'s output that are not features (CLS).
        token_names: ``T`` names: clinical columns (numeric then categorical), then omics groups.
        numeric, categorical: clinical column names in forward order (``F_num``, ``F_cat``).
        omics_columns: ``G`` gene names; ``omics_groups``: gene indices per omics token.
        cam_token_grid: ViT patch grid when the CAM layer outputs tokens ``[B, N, D]``.
    """

    model: nn.Module
    task: str = "binary"
    image_encoder: Optional[nn.Module] = None
    default_cam_layer: Optional[str] = None
    token_layer: Optional[nn.Module] = None
    token_offset: int = 0
    numeric: List[str] = field(default_factory=list)
    categorical: List[str] = field(default_factory=list)
    omics_columns: List[str] = field(default_factory=list)
    omics_groups: List[List[int]] = field(default_factory=list)
    group_names: List[str] = field(default_factory=list)
    cam_token_grid: Optional[Tuple[int, ...]] = None

    @property
    def clinical_columns(self) -> List[str]:
        return list(self.numeric) + list(self.categorical)

    @property
    def token_names(self) -> List[str]:
        """One name per table token: clinical columns, then omics groups."""
        return self.clinical_columns + list(self.group_names)


def forward_args(batch: Dict[str, Any]) -> Tuple[Tensor, ...]:
    """The classifier's eight positional tensors taken from a batch dict."""
    return tuple(batch[k] for k in FORWARD_KEYS)


def probabilities(logits: Tensor, task: str) -> Tensor:
    """``[B, K]`` logits -> probabilities (softmax for multiclass, sigmoid otherwise)."""
    return torch.softmax(logits.float(), dim=1) if task == "multiclass" else torch.sigmoid(logits.float())


def choose_targets(logits: Tensor, task: str) -> Tensor:
    """``[B]`` output index explained per sample (0 for binary, argmax otherwise)."""
    if logits.shape[1] == 1:
        return torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return logits.argmax(dim=1)


@torch.no_grad()
def predict(ex: Explainable, batch: Dict[str, Any]) -> Tuple[Tensor, Tensor, Tensor]:
    """``(logits [B, K], targets [B], target probability [B])`` for a batch."""
    logits = ex.model(*forward_args(batch))
    targets = choose_targets(logits, ex.task)
    prob = probabilities(logits, ex.task).gather(1, targets[:, None])[:, 0]
    return logits, targets, prob


def target_probability(ex: Explainable, args: Sequence[Tensor], targets: Tensor) -> Tensor:
    """Probability ``[B]`` of each sample's target output for forward ``args``."""
    with torch.no_grad():
        logits = ex.model(*args)
    return probabilities(logits, ex.task).gather(1, targets[:, None].to(logits.device))[:, 0]


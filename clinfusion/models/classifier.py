"""A classifier on the fused embedding, callable with plain tensors (captum-friendly).

``FusedClassifier(model, num_outputs, head="linear"|"mlp", hidden=128, freeze_encoders=False)``

``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)
-> logits [B, K]``: every argument is a tensor of the batch layout
(:mod:`clinfusion.datasets.batch`), so attribution libraries can perturb any of them.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from clinfusion.models.heads import HEADS
from clinfusion.models.multimodal import TABLE_KEYS, MultimodalModel

INPUT_KEYS = ("image",) + TABLE_KEYS + ("modality_mask",)


class FusedClassifier(nn.Module):
    def __init__(self, model: MultimodalModel, num_outputs: int, head: str = "linear", hidden: int = 128,
                 freeze_encoders: bool = False) -> None:
        super().__init__()
        self.model = model
        self.head_name = head
        self.head = HEADS.create(head, model.fused_dim, num_outputs, hidden)
        self.num_outputs = num_outputs
        self.freeze_encoders = freeze_encoders
        if freeze_encoders:
            for p in self.model.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FusedClassifier":
        super().train(mode)
        if self.freeze_encoders:  # frozen encoders keep eval-mode BatchNorm/dropout (linear probe)
            self.model.eval()
        return self

    def forward(self, image: Tensor, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                omics: Tensor, omics_missing: Tensor, modality_mask: Tensor) -> Tensor:
        out = self.model.forward_tensors(image, num, num_missing, cat, cat_missing, omics, omics_missing,
                                         modality_mask)
        return self.head(out["fused"])

    def forward_batch(self, batch: Dict[str, Tensor]) -> Tensor:
        """Batch dict -> logits ``[B, K]``."""
        return self(*(batch[k] for k in INPUT_KEYS))

    @torch.no_grad()
    def embed(self, batch: Dict[str, Tensor]) -> Tensor:
        """Fused embedding ``[B, F]`` without the head."""
        return self.model.fuse(batch)

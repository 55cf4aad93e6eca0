"""Modality dropout: randomly hide a whole modality in training (Neverova et al. 2016,
"ModDrop"), so the fused model works when one is missing at test time."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


class ModalityDropout(nn.Module):
    """Clear each present entry of ``modality_mask [B, 2]`` with probability ``p``.

    Never leaves a sample with no modality when it had one (such a drop is undone); in
    eval mode, or with ``p = 0``, returns the mask unchanged. Returns a new tensor.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"ModalityDropout p must be in [0, 1); got {p}")
        self.p = p

    def forward(self, modality_mask: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        mask = modality_mask.to(torch.bool)
        if not self.training or self.p == 0.0:
            return mask.clone()
        dev = generator.device if generator is not None else mask.device
        drop = (torch.rand(mask.shape, generator=generator, device=dev) < self.p).to(mask.device)
        kept = mask & ~drop
        emptied = ~kept.any(dim=1, keepdim=True) & mask.any(dim=1, keepdim=True)
        return torch.where(emptied, mask, kept)

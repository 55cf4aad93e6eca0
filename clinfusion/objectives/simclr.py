"""NT-Xent loss of SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning
of Visual Representations"), with negatives from the global batch."""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.objectives.distributed import gather_with_grad, local_labels


class NTXentLoss(nn.Module):
    """``forward(z1 [B, D], z2 [B, D]) -> {"simclr_loss": []}``.

    The ``2B`` local anchors (both views, L2-normalised) are scored against all ``2N``
    global embeddings ``[z1_all; z2_all]`` divided by ``temperature``; the anchor itself is
    excluded, its other view is the positive, the other ``2N - 2`` are negatives. The loss
    is the mean over local anchors (mean over ranks = global mean; see
    :mod:`clinfusion.objectives.distributed`).
    """

    def __init__(self, temperature: float = 0.1, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.temperature, self.gather = temperature, gather

    def forward(self, z1: Tensor, z2: Tensor) -> Dict[str, Tensor]:
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"NTXentLoss expects z1 and z2 [B, D]; got {tuple(z1.shape)} and {tuple(z2.shape)}")
        b = z1.shape[0]
        z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
        if self.gather:
            cols1, cols2, own = gather_with_grad(z1), gather_with_grad(z2), local_labels(b, z1.device)
        else:
            cols1, cols2, own = z1, z2, torch.arange(b, device=z1.device)
        n = cols1.shape[0]
        logits = torch.cat([z1, z2]) @ torch.cat([cols1, cols2]).T / self.temperature  # [2B, 2N]
        self_idx = torch.cat([own, own + n])
        pos_idx = torch.cat([own + n, own])
        logits = logits.masked_fill(F.one_hot(self_idx, 2 * n).bool(), torch.finfo(logits.dtype).min)
        return {"simclr_loss": F.cross_entropy(logits, pos_idx)}

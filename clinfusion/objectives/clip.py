"""CLIP loss: symmetric InfoNCE between image and table embeddings (Radford et al. 2021,
"Learning Transferable Visual Models From Natural Language Supervision"; ConVIRT, Zhang
et al. 2022, for medical image/report pairs)."""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.objectives.distributed import gather_no_grad, gather_with_grad, local_labels, world_info


class LogitScale(nn.Module):
    """Learnable ``s = exp(log_scale)``, initialised to ``1 / init_temperature`` and clamped
    to ``max_scale`` (CLIP clamps at 100). ``forward() -> scalar tensor``."""

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        if init_temperature <= 0:
            raise ValueError(f"init_temperature must be > 0; got {init_temperature}")
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(self) -> Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over L2-normalised embeddings, negatives from the global batch.

    ``forward(image_proj [B, D], table_proj [B, D], logit_scale [] , valid [B] bool | None)
    -> {"clip_loss": []}``.

    With ``N`` global rows, local logits are ``s * img_local @ tab_all.T`` ``[B, N]`` and
    ``s * tab_local @ img_all.T``; the target of local row ``i`` is column ``rank * B + i``.
    Rows with ``valid = False`` (e.g. a missing modality) are neither anchors nor negatives.
    The per-rank loss is ``(sum of valid local row losses, both directions, / 2) /
    (global valid count / world)``, so the mean over ranks is the global-batch mean (see
    :mod:`clinfusion.objectives.distributed` for the gradient convention). No valid row
    anywhere -> a zero loss that still depends on the inputs.
    """

    def __init__(self, gather: bool = True) -> None:
        super().__init__()
        self.gather = gather

    def forward(self, image_proj: Tensor, table_proj: Tensor, logit_scale: Tensor,
                valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
        if image_proj.shape != table_proj.shape or image_proj.dim() != 2:
            raise ValueError(f"ClipLoss expects image_proj and table_proj [B, D]; got "
                             f"{tuple(image_proj.shape)} and {tuple(table_proj.shape)}")
        b = image_proj.shape[0]
        img, tab = F.normalize(image_proj, dim=-1), F.normalize(table_proj, dim=-1)
        valid = torch.ones(b, dtype=torch.bool, device=img.device) if valid is None else valid.to(torch.bool)
        if self.gather:
            img_all, tab_all, valid_all = gather_with_grad(img), gather_with_grad(tab), gather_no_grad(valid)
            labels, world = local_labels(b, img.device), world_info()[1]
        else:
            img_all, tab_all, valid_all = img, tab, valid
            labels, world = torch.arange(b, device=img.device), 1
        n_valid = valid_all.sum()
        if int(n_valid) == 0:
            return {"clip_loss": (image_proj.sum() + table_proj.sum()) * 0.0 + logit_scale * 0.0}
        logits_i = logit_scale * img[valid] @ tab_all.T  # [B_valid, N]
        logits_t = logit_scale * tab[valid] @ img_all.T
        logits_i = logits_i.masked_fill(~valid_all, torch.finfo(logits_i.dtype).min)
        logits_t = logits_t.masked_fill(~valid_all, torch.finfo(logits_t.dtype).min)
        target = labels[valid]
        total = F.cross_entropy(logits_i, target, reduction="sum") + F.cross_entropy(logits_t, target, reduction="sum")
        return {"clip_loss": total / 2 / (n_valid.to(total.dtype) / world)}

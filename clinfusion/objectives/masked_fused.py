"""Image-conditioned masked-feature reconstruction through the fusion (TIP, Du et al. 2024,
"TIP: Tabular-Image Pre-training for Multimodal Classification with Incomplete Data").

A share of the observed clinical values is hidden from the table encoder
(:func:`~clinfusion.objectives.masked_features.mask_features`); the masked record's
embedding is fused with the *full* image embedding and the hidden values are predicted
from the fused embedding alone. Where a value is predictable from the image (and not
from the rest of the record), only a fusion that passes the image through can lower the
loss. Numeric: MSE; categorical: cross-entropy; masked entries only.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.encoders.schema import TableSchema
from clinfusion.objectives.masked_features import categorical_layout


class MaskedFusedLoss(nn.Module):
    """Linear reconstruction heads on the fused embedding.

    ``forward(fused [B, F], num [B, F_num], cat [B, F_cat], mask_num [B, F_num] bool,
    mask_cat [B, F_cat] bool) -> {"masked_fused_loss": []}``: ``fused`` is the fusion of the
    image embedding and the *masked* record's embedding, ``num`` / ``cat`` the unmasked
    values, the masks True where a value was hidden (and observed). MSE over masked numeric
    entries plus mean cross-entropy over masked categorical entries (each part 0 when
    nothing of its kind is masked).
    """

    def __init__(self, fused_dim: int, schema: TableSchema) -> None:
        super().__init__()
        self.n_num, self.n_cat = schema.n_num, schema.n_cat
        if self.n_num + self.n_cat == 0:
            raise ValueError("masked_fused needs at least one numeric or categorical clinical column")
        cards = [int(c) for c in schema.cat_cardinalities]
        self.num_head = nn.Linear(fused_dim, max(self.n_num, 1))
        self.cat_head = nn.Linear(fused_dim, max(sum(cards), 1))
        offsets, own = categorical_layout(cards)
        self.register_buffer("cat_offsets", offsets, persistent=False)
        self.register_buffer("cat_own", own, persistent=False)

    def forward(self, fused: Tensor, num: Tensor, cat: Tensor, mask_num: Tensor, mask_cat: Tensor) -> Dict[str, Tensor]:
        if fused.dim() != 2 or fused.shape[0] != num.shape[0]:
            raise ValueError(f"MaskedFusedLoss expects fused [B, F] and num [B, F_num]; got {tuple(fused.shape)} "
                             f"and {tuple(num.shape)}")
        zero = fused.sum() * 0.0 + sum(p.sum() for p in self.parameters()) * 0.0
        loss = zero
        if self.n_num and bool(mask_num.any()):
            pred = self.num_head(fused).float()  # [B, F_num]
            loss = loss + F.mse_loss(pred[mask_num], num.float()[mask_num])
        if self.n_cat and bool(mask_cat.any()):
            logits = self.cat_head(fused).float().unsqueeze(1).expand(-1, self.n_cat, -1)  # [B, F_cat, sum(cards)]
            logits = logits.masked_fill(~self.cat_own, torch.finfo(logits.dtype).min)
            target = cat.long() + self.cat_offsets
            loss = loss + F.cross_entropy(logits[mask_cat], target[mask_cat])
        return {"masked_fused_loss": loss}

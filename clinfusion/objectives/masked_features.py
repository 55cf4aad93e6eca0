"""Masked-feature reconstruction for tables: hide a random share of observed clinical
features and predict them from the transformer's token outputs (the tabular analogue of
masked language modelling, Devlin et al. 2019; e.g. TabTransformer / SAINT pretraining,
Huang et al. 2020, Somepalli et al. 2021). Numeric: MSE; categorical: cross-entropy."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.encoders.schema import TableSchema


def mask_features(num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor, ratio: float,
                  generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """Mark a random share ``ratio`` of the *observed* clinical values as missing.

    The tokenizer then shows its learned missing token there (it doubles as ``[MASK]``).

    Returns:
        new tensors ``num, num_missing, cat, cat_missing`` (masked values zeroed / set to 0)
        and the targets' masks ``mask_num [B, F_num]``, ``mask_cat [B, F_cat]`` (True = masked
        here and observed in the input).
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1]; got {ratio}")
    dev = generator.device if generator is not None else num.device
    mask_num = (torch.rand(num.shape, generator=generator, device=dev).to(num.device) < ratio) & ~num_missing
    mask_cat = (torch.rand(cat.shape, generator=generator, device=dev).to(cat.device) < ratio) & ~cat_missing
    return {
        "num": num.masked_fill(mask_num, 0.0), "num_missing": num_missing | mask_num,
        "cat": cat.masked_fill(mask_cat, 0), "cat_missing": cat_missing | mask_cat,
        "mask_num": mask_num, "mask_cat": mask_cat,
    }


def categorical_layout(cards: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Where each categorical feature's logits sit in one concatenated head of ``max(sum(cards), 1)`` outputs.

    Returns:
        ``offsets [F_cat]`` long (index of feature f's first logit: ``cat + offsets`` is the
        target in the concatenated head) and ``own [F_cat, max(sum(cards), 1)]`` bool (True on
        feature f's own logits; the others are masked out before the cross-entropy).
    """
    cards = [int(c) for c in cards]
    offsets = torch.tensor([0] + cards, dtype=torch.long).cumsum(0)
    own = torch.zeros(len(cards), max(sum(cards), 1), dtype=torch.bool)
    for f in range(len(cards)):
        own[f, offsets[f]: offsets[f + 1]] = True
    return offsets[: len(cards)], own


class MaskedFeatureLoss(nn.Module):
    """Per-feature reconstruction heads on the token outputs.

    ``forward(tokens [B, 1 + T, H], num [B, F_num], cat [B, F_cat], mask_num, mask_cat)
    -> {"masked_features_loss": []}`` where ``tokens`` is ``TabularEncoder.forward_tokens``
    of the masked batch (CLS at 0, numeric tokens ``1..F_num``, then categorical), ``num`` /
    ``cat`` the *unmasked* values and the masks from :func:`mask_features`. The loss is the
    MSE over masked numeric entries plus the mean cross-entropy over masked categorical
    entries (a term with no masked entry is 0).
    """

    def __init__(self, hidden: int, schema: TableSchema) -> None:
        super().__init__()
        self.n_num, self.n_cat = schema.n_num, schema.n_cat
        cards = [int(c) for c in schema.cat_cardinalities]
        self.num_weight = nn.Parameter(torch.randn(self.n_num, hidden) * hidden ** -0.5)
        self.num_bias = nn.Parameter(torch.zeros(self.n_num))
        self.cat_head = nn.Linear(hidden, max(sum(cards), 1))
        offsets, own = categorical_layout(cards)
        self.register_buffer("cat_offsets", offsets, persistent=False)
        self.register_buffer("cat_own", own, persistent=False)

    def forward(self, tokens: Tensor, num: Tensor, cat: Tensor, mask_num: Tensor, mask_cat: Tensor) -> Dict[str, Tensor]:
        zero = tokens.sum() * 0.0
        loss_num, loss_cat = zero, zero
        if self.n_num and bool(mask_num.any()):
            h = tokens[:, 1: 1 + self.n_num]  # [B, F_num, H]
            pred = (h * self.num_weight).sum(-1) + self.num_bias  # [B, F_num]
            loss_num = F.mse_loss(pred[mask_num], num.to(pred.dtype)[mask_num])
        if self.n_cat and bool(mask_cat.any()):
            h = tokens[:, 1 + self.n_num: 1 + self.n_num + self.n_cat]  # [B, F_cat, H]
            logits = self.cat_head(h)  # [B, F_cat, sum(cards)]
            logits = logits.masked_fill(~self.cat_own, torch.finfo(logits.dtype).min)
            target = cat.long() + self.cat_offsets
            loss_cat = F.cross_entropy(logits[mask_cat], target[mask_cat])
        return {"masked_features_loss": loss_num + loss_cat}

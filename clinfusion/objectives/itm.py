"""Image-table matching (ITM): the fusion plus a binary head tells a true (image, record)
pair from a hard negative one (ALBEF, Li et al. 2021, "Align before Fuse"; TIP, Du et al.
2024, "TIP: Tabular-Image Pre-training for Multimodal Classification with Incomplete Data").

Hard negatives come from the CLIP space: for each image the most similar record of
*another* patient in the (cross-rank gathered) batch, and for each record the most
similar image of another patient. Only the fusion learns from this term's choice of
negatives; the similarities themselves are read without gradient.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.objectives.distributed import gather_no_grad, gather_with_grad, local_labels, world_info


def hardest_negatives(sim: Tensor, allowed: Tensor) -> Tensor:
    """Most similar allowed column of each row.

    Args:
        sim: ``[B, N]`` similarities of ``B`` anchors to ``N`` candidates.
        allowed: ``[B, N]`` bool, False for the anchor's own pair, same-patient and invalid
            candidates.

    Returns:
        ``[B]`` int64 column index; ``-1`` where a row has no allowed column.
    """
    if sim.shape != allowed.shape or sim.dim() != 2:
        raise ValueError(f"hardest_negatives expects sim and allowed [B, N]; got {tuple(sim.shape)} "
                         f"and {tuple(allowed.shape)}")
    masked = sim.float().masked_fill(~allowed, float("-inf"))
    idx = masked.argmax(dim=1)
    return torch.where(allowed.any(dim=1), idx, torch.full_like(idx, -1))


class ItmLoss(nn.Module):
    """Binary matching head on fused pairs.

    ``forward(fusion, image_emb [B, Di], table_emb [B, Dt], image_proj [B, P], table_proj [B, P],
    valid [B] bool | None, group [B] int64 | None) -> {"itm_loss": [], "itm_acc": []}``.

    ``fusion`` is the model's fusion module (``(img [M, Di], tab [M, Dt], mask [M, 2]) -> [M, F]``),
    called with both modalities present. For every local anchor row ``i`` (``valid``: both
    modalities; and one allowed negative each way) three pairs are scored: ``(img_i, tab_i)``
    (match), ``(img_i, tab_j*)`` and ``(img_k*, tab_i)`` (no match), ``j*``/``k*`` from
    :func:`hardest_negatives` over the global batch (same ``group``, i.e. patient, never a
    negative). The loss is the cross-entropy summed over the local triples divided by
    ``3 * (global anchor count / world)`` (the global mean over ranks; see
    :mod:`clinfusion.objectives.distributed`); ``itm_acc`` is the local share of correctly
    classified pairs (detached; 0.5 = chance on balanced pairs is not the reference here:
    one pair in three matches, so always answering "no match" scores 2/3).
    """

    def __init__(self, fused_dim: int, gather: bool = True) -> None:
        super().__init__()
        self.head = nn.Linear(fused_dim, 2)
        self.gather = gather

    def negatives(self, image_proj: Tensor, table_proj: Tensor, valid: Tensor, group: Tensor,
                  gather: bool = True) -> Dict[str, Tensor]:
        """Hard negatives over the global batch: ``{"table": [B], "image": [B]}`` global indices (-1 = none)."""
        b = image_proj.shape[0]
        img = F.normalize(image_proj.detach().float(), dim=-1)
        tab = F.normalize(table_proj.detach().float(), dim=-1)
        if gather:
            img_all, tab_all = gather_no_grad(img), gather_no_grad(tab)
            valid_all, group_all, own = gather_no_grad(valid), gather_no_grad(group), local_labels(b, img.device)
        else:
            img_all, tab_all, valid_all, group_all, own = img, tab, valid, group, torch.arange(b, device=img.device)
        n = img_all.shape[0]
        allowed = valid_all[None, :] & (group_all[None, :] != group[:, None])
        allowed &= torch.arange(n, device=img.device)[None, :] != own[:, None]
        allowed &= valid[:, None]
        return {"table": hardest_negatives(img @ tab_all.T, allowed), "image": hardest_negatives(tab @ img_all.T, allowed)}

    def forward(self, fusion: nn.Module, image_emb: Tensor, table_emb: Tensor, image_proj: Tensor,
                table_proj: Tensor, valid: Optional[Tensor] = None, group: Optional[Tensor] = None,
                gather: Optional[bool] = None) -> Dict[str, Tensor]:
        """``gather=False`` scores this process's rows alone (e.g. rank-0 validation); default: ``self.gather``."""
        gather = self.gather if gather is None else gather
        b = image_emb.shape[0]
        if table_emb.shape[0] != b or image_proj.shape[0] != b or table_proj.shape[0] != b:
            raise ValueError(f"ItmLoss expects B rows everywhere; got {tuple(image_emb.shape)}, {tuple(table_emb.shape)}, "
                             f"{tuple(image_proj.shape)}, {tuple(table_proj.shape)}")
        dev = image_emb.device
        valid = torch.ones(b, dtype=torch.bool, device=dev) if valid is None else valid.to(torch.bool)
        if group is None:
            group = local_labels(b, dev) if gather else torch.arange(b, device=dev)
        group = group.to(torch.long)
        neg = self.negatives(image_proj, table_proj, valid, group, gather)
        anchors = valid & (neg["table"] >= 0) & (neg["image"] >= 0)
        if gather:
            img_all, tab_all = gather_with_grad(image_emb), gather_with_grad(table_emb)
            n_anchors, world = gather_no_grad(anchors).sum(), world_info()[1]
        else:
            img_all, tab_all, n_anchors, world = image_emb, table_emb, anchors.sum(), 1
        # every gathered tensor stays in the graph: their backward is a collective all ranks must join
        zero = (img_all.sum() + tab_all.sum()) * 0.0 + sum(p.sum() for p in self.head.parameters()) * 0.0
        if int(n_anchors) == 0 or not bool(anchors.any()):
            return {"itm_loss": zero, "itm_acc": zero.detach()}
        a = anchors.nonzero().squeeze(1)
        imgs = torch.cat([image_emb[a], image_emb[a], img_all[neg["image"][a]]])
        tabs = torch.cat([table_emb[a], tab_all[neg["table"][a]], table_emb[a]])
        m = a.numel()
        mask = torch.ones(3 * m, 2, dtype=torch.bool, device=dev)
        logits = self.head(fusion(imgs, tabs, mask))  # [3M, 2]
        target = torch.cat([torch.ones(m, dtype=torch.long, device=dev), torch.zeros(2 * m, dtype=torch.long, device=dev)])
        total = F.cross_entropy(logits.float(), target, reduction="sum")
        loss = total / 3 / (n_anchors.to(total.dtype) / world) + zero
        acc = (logits.argmax(dim=1) == target).float().mean().detach()
        return {"itm_loss": loss, "itm_acc": acc}

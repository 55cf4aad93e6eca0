"""SCARF (Bahri et al. 2022, "SCARF: Self-Supervised Contrastive Learning using Random
Feature Corruption"): corrupt a random share of each row's features with values drawn
from the batch's empirical marginals, then InfoNCE between anchor and corrupted view."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clinfusion.objectives.distributed import gather_with_grad, local_labels


def _rand(shape: Tuple[int, ...], like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=dev).to(like.device)


def _corrupt_pair(x: Tensor, missing: Tensor, rate: float, generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
    """Each entry of ``x [B, F]`` is replaced with prob. ``rate`` by the same column of a
    uniformly drawn row (its missing flag travels with it). New tensors."""
    b, f = x.shape
    if b == 0 or f == 0:
        return x.clone(), missing.clone()
    replace = _rand((b, f), x, generator) < rate
    src = (_rand((b, f), x, generator) * b).long().clamp(max=b - 1)
    return torch.where(replace, x.gather(0, src), x), torch.where(replace, missing.gather(0, src), missing)


def scarf_corrupt(num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor, rate: float,
                  generator: Optional[torch.Generator] = None, omics: Optional[Tensor] = None,
                  omics_missing: Optional[Tensor] = None) -> Dict[str, Tensor]:
    """SCARF corruption of a batch (inputs untouched).

    Args:
        num, num_missing: ``[B, F_num]``; cat, cat_missing: ``[B, F_cat]``;
        omics, omics_missing: optional ``[B, G]`` (each column corrupted independently).
        rate: share of features replaced, in ``[0, 1]``.
        generator: optional ``torch.Generator`` for reproducibility.

    Returns:
        dict with keys ``num, num_missing, cat, cat_missing`` (+ ``omics, omics_missing``
        when given), same shapes/dtypes, ready to merge into the batch dict.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"corruption rate must be in [0, 1]; got {rate}")
    out: Dict[str, Tensor] = {}
    out["num"], out["num_missing"] = _corrupt_pair(num, num_missing, rate, generator)
    out["cat"], out["cat_missing"] = _corrupt_pair(cat, cat_missing, rate, generator)
    if omics is not None and omics_missing is not None:
        out["omics"], out["omics_missing"] = _corrupt_pair(omics, omics_missing, rate, generator)
    return out


class ScarfLoss(nn.Module):
    """``forward(anchor [B, D], positive [B, D]) -> {"scarf_loss": []}``.

    InfoNCE (one direction, as in the paper): logits ``anchor_local @ positive_all.T / T``
    ``[B, N]`` over L2-normalised embeddings, target column ``rank * B + i``; mean over local
    rows (global-batch convention of :mod:`clinfusion.objectives.distributed`).
    """

    def __init__(self, temperature: float = 1.0, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.temperature, self.gather = temperature, gather

    def forward(self, anchor: Tensor, positive: Tensor) -> Dict[str, Tensor]:
        if anchor.shape != positive.shape or anchor.dim() != 2:
            raise ValueError(f"ScarfLoss expects anchor and positive [B, D]; got "
                             f"{tuple(anchor.shape)} and {tuple(positive.shape)}")
        a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
        b = a.shape[0]
        if self.gather:
            cols, target = gather_with_grad(p), local_labels(b, a.device)
        else:
            cols, target = p, torch.arange(b, device=a.device)
        return {"scarf_loss": F.cross_entropy(a @ cols.T / self.temperature, target)}

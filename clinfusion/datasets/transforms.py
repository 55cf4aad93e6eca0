"""Batch transforms shared by every consumer of the batch layout (:mod:`clinfusion.datasets.batch`).

:func:`remove_modality` is THE modality-removal transform: missing-modality metrics
(``evaluation.missing_modality``, fine-tuning and evaluate) and the modality-share
ablations of ``explain`` both call it, so "without the image" means one thing everywhere:

* ``no_image``: ``modality_mask[:, 0] = False`` and the image zeroed;
* ``no_table``: ``modality_mask[:, 1] = False`` and every clinical / omics value in the
  missing state (value 0, missing flag True; see :func:`missing_table`);
* ``all``: the batch as recorded.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from clinfusion.datasets.batch import IMAGE, TABLE

VARIANTS = ("all", "no_image", "no_table")
TABLE_KEYS = ("num", "cat", "omics")  # each with its ``<key>_missing`` flags


def missing_table(batch: Dict[str, Any]) -> Dict[str, Tensor]:
    """The six tabular tensors of ``batch`` in the missing state: values 0 (same shape/dtype),
    flags ``bool`` True (``num [B, F_num]``, ``cat [B, F_cat]``, ``omics [B, G]`` and their ``*_missing``)."""
    out = {}
    for k in TABLE_KEYS:
        out[k] = torch.zeros_like(batch[k])
        out[f"{k}_missing"] = torch.ones_like(batch[f"{k}_missing"], dtype=torch.bool)
    return out


def remove_modality(batch: Dict[str, Any], variant: str) -> Dict[str, Any]:
    """A shallow copy of ``batch`` with one modality removed (``variant`` in :data:`VARIANTS`).

    The input batch is never modified; ``modality_mask [B, 2]`` is copied before it changes.

    Raises:
        ValueError: an unknown ``variant`` (lists the valid ones).
    """
    if variant == "all":
        return batch
    if variant not in VARIANTS:
        raise ValueError(f"unknown modality variant {variant!r}; expected one of {VARIANTS}")
    out = dict(batch)
    mask = batch["modality_mask"].clone()
    if variant == "no_image":
        mask[:, IMAGE] = False
        out["image"] = torch.zeros_like(batch["image"])
    else:
        mask[:, TABLE] = False
        out.update(missing_table(batch))
    out["modality_mask"] = mask
    return out

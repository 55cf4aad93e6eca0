"""Common part of every fusion: learned "missing" embeddings and the registry.

A fusion maps ``img [B, Di]``, ``tab [B, Dt]`` and ``modality_mask [B, 2]`` (bool,
``(has_image, has_table)``, see :mod:`clinfusion.datasets.batch`) to ``[B, dim]``.
Where a modality is absent its embedding is *replaced* by a learned vector, so the
(arbitrary) encoder output of a zero image / empty table never reaches the result.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from clinfusion.registry import Registry

FUSIONS = Registry("fusion")


class Fusion(nn.Module):
    """Base class: holds ``missing_image [Di]`` and ``missing_table [Dt]`` embeddings."""

    def __init__(self, image_dim: int, table_dim: int, dim: int) -> None:
        super().__init__()
        self.image_dim, self.table_dim, self.dim = image_dim, table_dim, dim
        self.missing_image = nn.Parameter(torch.randn(image_dim) * 0.02)
        self.missing_table = nn.Parameter(torch.randn(table_dim) * 0.02)

    def check(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> None:
        b = img.shape[0]
        if img.shape != (b, self.image_dim) or tab.shape != (b, self.table_dim) or modality_mask.shape != (b, 2):
            raise ValueError(
                f"fusion expects img [B, {self.image_dim}], tab [B, {self.table_dim}], modality_mask [B, 2]; "
                f"got {tuple(img.shape)}, {tuple(tab.shape)}, {tuple(modality_mask.shape)}"
            )

    def fill_missing(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Replace absent rows by the learned embeddings (new tensors; inputs untouched)."""
        self.check(img, tab, modality_mask)
        m = modality_mask.to(torch.bool)
        img = torch.where(m[:, :1], img, self.missing_image.to(img.dtype).expand_as(img))
        tab = torch.where(m[:, 1:], tab, self.missing_table.to(tab.dtype).expand_as(tab))
        return img, tab

    def forward(self, img: Tensor, tab: Tensor, modality_mask: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

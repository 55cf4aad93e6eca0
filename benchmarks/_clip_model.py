"""A bare CLIP pair built only from committed library parts, for scaling measurements.

``ClipPair`` = image encoder + tabular encoder + linear projections + learnable logit
scale + :class:`~clinfusion.objectives.ClipLoss` (global negatives via
``gather_with_grad``). It does not depend on the training stack, so the scaling curves
measure the model and the loss, not the loop around them.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from benchmarks._device import autocast
from clinfusion.config.schema import ImageEncoderConfig, TabularEncoderConfig
from clinfusion.encoders.image import create_image_encoder
from clinfusion.encoders.schema import TableSchema
from clinfusion.encoders.tabular import TabularEncoder
from clinfusion.objectives import ClipLoss, LogitScale

TABLE_KEYS = ("num", "num_missing", "cat", "cat_missing", "omics", "omics_missing")


def table_schema(n_num: int = 8, cards: Sequence[int] = (3, 5), n_omics: int = 0) -> TableSchema:
    """A schema with ``n_num`` numeric, ``len(cards)`` categorical and ``n_omics`` omics columns."""
    return TableSchema(numeric=[f"x{i}" for i in range(n_num)], categorical=[f"c{i}" for i in range(len(cards))],
                       cat_cardinalities=list(cards), omics_columns=[f"g{i}" for i in range(n_omics)])


def table_batch(schema: TableSchema, batch: int, device: torch.device, missing: float = 0.1,
                seed: int = 0) -> Dict[str, Tensor]:
    """Random table tensors in the batch layout (``clinfusion.datasets.batch``)."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, c, (batch,), generator=g) for c in schema.cat_cardinalities], 1) \
        if schema.n_cat else torch.zeros(batch, 0, dtype=torch.long)
    out = {
        "num": torch.randn(batch, schema.n_num, generator=g),
        "num_missing": torch.rand(batch, schema.n_num, generator=g) < missing,
        "cat": cat,
        "cat_missing": torch.rand(batch, schema.n_cat, generator=g) < missing,
        "omics": torch.randn(batch, schema.n_omics, generator=g),
        "omics_missing": torch.rand(batch, schema.n_omics, generator=g) < missing,
    }
    return {k: v.to(device) for k, v in out.items()}


def image_batch(batch: int, channels: int, size: Sequence[int], device: torch.device, seed: int = 0) -> Tensor:
    """``[B, C, *size]`` uniform noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, *size, generator=g).to(device)


class ClipPair(nn.Module):
    """Image + table encoders aligned by ClipLoss. ``forward(image [B,C,*S], **table) -> loss []``."""

    def __init__(self, image_cfg: ImageEncoderConfig, table_cfg: TabularEncoderConfig, schema: TableSchema,
                 spatial_dims: int, in_channels: int, image_size: Sequence[int], proj_dim: int = 128) -> None:
        super().__init__()
        self.image = create_image_encoder(image_cfg, spatial_dims, in_channels, image_size)
        self.table = TabularEncoder(table_cfg, schema)
        self.image_proj = nn.Linear(self.image.embed_dim, proj_dim)
        self.table_proj = nn.Linear(self.table.embed_dim, proj_dim)
        self.scale = LogitScale()
        self.clip = ClipLoss(gather=True)

    def forward(self, image: Tensor, **table: Tensor) -> Tensor:
        zi = self.image_proj(self.image(image))
        zt = self.table_proj(self.table(**{k: table[k] for k in TABLE_KEYS}))
        return self.clip(zi.float(), zt.float(), self.scale())["clip_loss"]


def train_step(model: nn.Module, opt: torch.optim.Optimizer, inputs: Dict[str, Tensor],
               device: torch.device, loss_fn: Optional[Callable[..., Tensor]] = None) -> Callable[[], Tensor]:
    """A closure doing one forward + backward + optimizer step on fixed ``inputs``.

    ``loss_fn(model, **inputs) -> scalar`` defaults to ``model(**inputs)``. bf16 autocast on CUDA.
    """
    fn = loss_fn or (lambda m, **kw: m(**kw))

    def step() -> Tensor:
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            loss = fn(model, **inputs)
        loss.backward()
        opt.step()
        return loss.detach()  # no .item(): the caller decides when to synchronise

    return step

"""``image_only`` baseline: the same image encoder architecture, trained supervised from scratch.

``logits = Linear(encoder.forward_features(image [B, C, *S]) [B, E]) -> [B, K_out]``,
trained on the training rows that have an image; rows without an image get the
prediction for a blank (zero) image.
"""

from __future__ import annotations

import numpy as np
import torch

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.heads.base import BASELINES, HeadContext, Predictor
from clinfusion.downstream.trainer import predict_on_batches, train_on_batches


class ImageOnlyNet(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, num_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = torch.nn.Linear(encoder.embed_dim, num_outputs)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image [B, C, *S]`` -> logits ``[B, K_out]``."""
        return self.fc(self.encoder.forward_features(image))

    def forward_batch(self, batch) -> torch.Tensor:
        return self(batch["image"])


class ImageOnly(Predictor):
    variants = False

    def __init__(self, net: ImageOnlyNet, task: str) -> None:
        self.name, self.net, self.task = "image_only", net, task

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        return predict_on_batches(self.net, data, rows, self.net.forward_batch, self.task, variant)


@BASELINES.register("image_only")
def image_only(ctx: HeadContext) -> ImageOnly:
    data, cfg = ctx.data, ctx.cfg
    net = ImageOnlyNet(ctx.new_image_encoder(), ctx.info.num_outputs).to(data.device)
    has_image = np.asarray([p is not None for p in data.cohort.image_paths])
    rows = ctx.train_rows[has_image[ctx.train_rows]]
    if len(rows) == 0:
        rows = ctx.train_rows
    train_on_batches(net, [{"params": list(net.parameters()), "lr": cfg.lr}], data, rows, net.forward_batch,
                     ctx.info.task, cfg.epochs, cfg.weight_decay, ctx.seed, "baseline 'image_only'")
    return ImageOnly(net, ctx.info.task)



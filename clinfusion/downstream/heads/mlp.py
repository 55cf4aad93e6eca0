"""``mlp`` head: one hidden layer (``finetune.mlp_hidden``) on the frozen fused embedding."""

from __future__ import annotations

import torch

from clinfusion.downstream.heads.base import HEADS, HeadContext
from clinfusion.downstream.heads.fused import FusedPredictor, make_classifier
from clinfusion.downstream.trainer import train_loop


@HEADS.register("mlp")
def mlp(ctx: HeadContext) -> FusedPredictor:
    data, cfg = ctx.data, ctx.cfg
    clf = make_classifier(ctx.encoder, ctx.info.num_outputs, "mlp", cfg.mlp_hidden, freeze_encoders=True)
    clf.to(data.device)
    emb = torch.as_tensor(data.embed(clf.model, ctx.train_rows), device=data.device)
    y = torch.as_tensor(data.y[ctx.train_rows], device=data.device)
    gen = torch.Generator().manual_seed(ctx.seed)

    def batches(epoch: int):
        order = torch.randperm(len(emb), generator=gen)
        for s in range(0, len(order), cfg.batch_size):
            i = order[s:s + cfg.batch_size].to(data.device)
            yield emb[i], y[i]

    train_loop(clf.head, [{"params": list(clf.head.parameters()), "lr": cfg.lr}], batches, clf.head,
               ctx.info.task, cfg.epochs, cfg.weight_decay, name="head 'mlp'")
    clf.eval()
    return FusedPredictor("mlp", clf, ctx.info.task, "mlp", cfg.mlp_hidden, frozen=True)

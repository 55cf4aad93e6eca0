"""Frozen-encoder heads on the fused embedding: ``linear`` (linear probe) and ``mlp``.

The encoder is frozen and the fused embeddings ``[N, D]`` are computed once per row set
(:meth:`FinetuneData.embed`), so only the head ``[B, D] -> [B, K_out]`` is optimised
(linear evaluation protocol: Chen et al. 2020, SimCLR; Radford et al. 2021, CLIP).
"""

from __future__ import annotations

import torch

from clinfusion.downstream.heads.base import HEADS, HeadContext
from clinfusion.downstream.heads.fused import FusedPredictor, make_classifier
from clinfusion.downstream.trainer import train_loop


def _fit_probe(ctx: HeadContext, head: str) -> FusedPredictor:
    data, cfg = ctx.data, ctx.cfg
    # the frozen encoder is shared (not copied) so its embeddings are computed once per row set
    clf = make_classifier(ctx.encoder, ctx.info.num_outputs, head, cfg.mlp_hidden, freeze_encoders=True)
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
               ctx.info.task, cfg.epochs, cfg.weight_decay, name=f"head {head!r}")
    clf.eval()
    return FusedPredictor(head, clf, ctx.info.task, head, cfg.mlp_hidden, frozen=True)


@HEADS.register("linear")
def linear(ctx: HeadContext) -> FusedPredictor:
    """Linear probe on the frozen fused embedding."""
    return _fit_probe(ctx, "linear")


@HEADS.register("mlp")
def mlp(ctx: HeadContext) -> FusedPredictor:
    """One-hidden-layer MLP (``finetune.mlp_hidden``) on the frozen fused embedding."""
    return _fit_probe(ctx, "mlp")

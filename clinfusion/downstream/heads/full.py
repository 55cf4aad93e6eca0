"""Full fine-tuning: encoders + fusion + a linear head trained end-to-end.

Encoder parameters use ``finetune.encoder_lr`` and the head ``finetune.lr`` (discriminative
learning rates: Howard & Ruder 2018); modules named in ``finetune.freeze`` stay fixed.
Also used by the ``fused_scratch`` baseline with a freshly initialised model.
"""

from __future__ import annotations

from typing import List

import torch

from clinfusion.downstream.heads.base import HEADS, HeadContext
from clinfusion.downstream.heads.fused import FusedPredictor, make_classifier
from clinfusion.downstream.trainer import train_on_batches
from clinfusion.errors import ConfigError


def apply_freeze(model: torch.nn.Module, names: List[str]) -> None:
    """Freeze every parameter under a module whose dotted path equals or ends with a name.

    Unknown names raise ConfigError listing the model's top-level modules.
    """
    modules = dict(model.named_modules())
    for name in names:
        hits = [m for path, m in modules.items() if path and (path == name or path.endswith("." + name))]
        if not hits:
            top = sorted({p.split(".")[0] for p in modules if p})
            raise ConfigError(f"finetune.freeze: no module named {name!r}; top-level modules: {', '.join(top)}")
        for m in hits:
            for p in m.parameters():
                p.requires_grad_(False)


def fit_end_to_end(ctx: HeadContext, model: torch.nn.Module, name: str) -> FusedPredictor:
    data, cfg = ctx.data, ctx.cfg
    model.requires_grad_(True)  # a copy of a frozen encoder carries requires_grad=False
    clf = make_classifier(model, ctx.info.num_outputs, "linear", cfg.mlp_hidden, freeze_encoders=False)
    apply_freeze(clf.model, cfg.freeze)
    clf.to(data.device)
    enc = [p for p in clf.model.parameters()]
    enc_ids = {id(p) for p in enc}
    rest = [p for p in clf.parameters() if id(p) not in enc_ids]
    groups = [{"params": enc, "lr": cfg.encoder_lr}, {"params": rest, "lr": cfg.lr}]
    train_on_batches(clf, groups, data, ctx.train_rows, clf.forward_batch, ctx.info.task, cfg.epochs,
                     cfg.weight_decay, ctx.seed, name)
    return FusedPredictor(name, clf, ctx.info.task, "linear", cfg.mlp_hidden, frozen=False)


@HEADS.register("full")
def full(ctx: HeadContext) -> FusedPredictor:
    """Fine-tune a copy of the (pre)trained model end-to-end."""
    return fit_end_to_end(ctx, ctx.encoder_copy(), "full")

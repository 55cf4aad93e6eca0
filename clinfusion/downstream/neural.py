"""Models trained by the engine: the ``mlp`` and ``full`` heads, the ``image_only`` and
``fused_scratch`` baselines.

Each one is a network with ``forward_batch(batch) -> logits [B, K_out]`` wrapped in a
:class:`ClassifierTask` (network + loss) and optimised by
:class:`clinfusion.training.engine.Trainer`, the same loop as pretraining: DDP under
torchrun, bf16 autocast, accumulation, atomic checkpoints with exact ``--resume``,
``metrics.csv`` (train loss, validation loss and AUROC per epoch) in
``<run>/training/<fold>_frac<fraction>/<model>/``. The kept weights of ``full``,
``fused_scratch`` and ``image_only`` are those of the epoch with the best validation AUROC
(``finetune.early_stopping``: stop after that many epochs without improvement); the ``mlp``
head keeps its last epoch by default (``finetune.mlp_keep``); test rows never take part.

* ``full``: a copy of the (pre)trained :class:`MultimodalModel` + linear head, encoders at
  ``finetune.encoder_lr`` and the head at ``finetune.lr`` (Howard & Ruder 2018);
  ``finetune.freeze`` names modules kept fixed; ``finetune.augment`` (random views of the training
  images) and ``finetune.modality_dropout`` (hide one input from the fusion) also serve
  ``fused_scratch``.
* ``fused_scratch``: the same, randomly initialised (what pretraining bought).
* ``image_only``: the image encoder architecture from scratch + linear layer, on the
  training rows that have an image.
* ``mlp``: one hidden layer (``finetune.mlp_hidden``) on the frozen fused embeddings, standardised with
  the training rows' mean and std (buffers saved with the head)
  (computed once; the engine trains the head on them). It keeps its last epoch
  (``finetune.mlp_keep: last``): on a small validation set the best-AUROC epoch is a noisy pick
  (numbers at ``mlp_keep`` in :mod:`clinfusion.config.schema`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.labels import loss_fn, to_probs
from clinfusion.downstream.models import (FusedPredictor, HeadContext, Predictor, make_classifier, predict_on_batches,
                                          register_model)
from clinfusion.errors import ConfigError
from clinfusion.fusion.dropout import ModalityDropout


class ClassifierTask(nn.Module):
    """Network + loss for the engine: ``forward(batch) -> {"loss": []}``.

    ``batch["target"]`` holds the targets of the label kind (binary ``[B]`` 0/1, multiclass
    ``[B]`` index, multilabel ``[B, K]`` with NaN = unlabelled); the loss is
    :func:`clinfusion.downstream.labels.loss_fn` on ``model.forward_batch(batch) [B, K_out]``.
    ``modality_dropout``: in training, each present modality of ``batch["modality_mask"] [B, 2]``
    is hidden from the fusion with this probability (never both; ``finetune.modality_dropout``).
    """

    def __init__(self, model: nn.Module, kind: str, modality_dropout: float = 0.0) -> None:
        super().__init__()
        self.model, self.kind = model, kind
        self.modality_dropout = ModalityDropout(modality_dropout)

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Tensor]:
        if self.modality_dropout.p > 0 and "modality_mask" in batch:
            batch = {**batch, "modality_mask": self.modality_dropout(batch["modality_mask"])}
        return {"loss": loss_fn(self.model.forward_batch(batch).float(), batch["target"], self.kind)}


class _WithTargets(Dataset):
    """Samples of ``base`` (``(sample, cohort_row)`` pairs) plus ``target``: the cohort row's entry
    of ``y`` (the targets of every cohort row)."""

    def __init__(self, base: Dataset, y: np.ndarray) -> None:
        self.base, self.y = base, torch.as_tensor(np.asarray(y, dtype=np.float32))
        self.seeded_index = getattr(base, "seeded_index", False)  # (index, seed) pairs seed the random views

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: Any) -> Dict[str, Any]:
        sample, row = self.base[i]
        return {**sample, "target": self.y[row]}


class _Embeddings(Dataset):
    """Frozen embeddings ``x [D]`` with their ``target`` (the mlp head's training rows)."""

    def __init__(self, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        self.ids, self.x = ids, torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {"id": str(self.ids[i]), "x": self.x[i], "target": self.y[i]}


class EmbeddingHead(nn.Module):
    """``head`` on precomputed embeddings: ``forward_batch(batch) = head(batch["x"] [B, D])``."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward_batch(self, batch: Dict[str, Tensor]) -> Tensor:
        return self.head(batch["x"])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        pass  # nothing to checkpoint in a small head


def cohort_dataset(data: FinetuneData, rows: np.ndarray, augment: bool = False) -> Dataset:
    """The cohort rows as engine samples (batch layout + ``target``); ``augment``: a random view of
    each image (``finetune.augment``, training rows only)."""
    return _WithTargets(data.dataset(rows, augment), data.y)


def fit_with_engine(ctx: HeadContext, net: nn.Module, name: str, train: Dataset, val: Dataset,
                    lr_by_prefix: Optional[Dict[str, float]] = None, modality_dropout: float = 0.0,
                    keep: str = "best") -> nn.Module:
    """Train ``net`` with the engine on ``train``; keep the epoch with the best validation AUROC
    (``keep="best"``, with ``finetune.early_stopping``) or the last epoch (``keep="last"``: the whole
    ``finetune.epochs`` budget; validation AUROC is still logged).

    Returns ``net`` with the kept weights, in eval mode.
    """
    from clinfusion.downstream.evaluation import compute_metrics
    from clinfusion.training.engine import Trainer, move
    from clinfusion.training.schedule import param_groups

    cfg = ctx.cfg
    task = ClassifierTask(net, ctx.info.kind, modality_dropout)
    groups = param_groups(task, cfg.weight_decay, lr_by_prefix)
    if not groups:
        return net.eval()
    work = Path(ctx.work_dir) / name
    if ctx.is_main:
        work.mkdir(parents=True, exist_ok=True)

    @torch.no_grad()
    def val_auroc(trainer: Trainer) -> Dict[str, float]:
        if len(val) < 2:
            return {}
        trainer.task.eval()
        ys, ps = [], []
        for batch in trainer.loader(val, trainer.progress.epoch, False, shard=False):
            with trainer._autocast():
                logits = trainer.task.model.forward_batch(move(batch, trainer.device))
            ps.append(to_probs(logits, ctx.info.kind))
            ys.append(batch["target"].numpy())
        y, p = np.concatenate(ys), np.concatenate(ps)
        return {"auroc": compute_metrics(y, p[:, 0] if ctx.info.kind == "binary" else p, ctx.info.kind)["auroc"]}

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if len(train) < cfg.batch_size * world:  # a small cohort: one smaller batch rather than no batch at all
        per = max(1, len(train) // world)
        if ctx.is_main:
            print(f"{name}: finetune.batch_size={cfg.batch_size} x {world} process(es) is more than its {len(train)} "
                  f"training rows; using batch_size={per}", flush=True)
        cfg = cfg.model_copy(update={"batch_size": per})
    trainer = Trainer(task, cfg, work, device=ctx.device_pref, seed=ctx.seed, groups=groups,
                      val_metrics=val_auroc, monitor="auroc" if keep == "best" else None, maximize=True,
                      patience=cfg.early_stopping if keep == "best" else None)
    trainer.fit(train, val, resume=ctx.resume)
    trainer.load_best()
    return net.eval()


def _end_to_end(ctx: HeadContext, model: nn.Module, name: str, pretrained: bool) -> FusedPredictor:
    """Train ``model`` + a linear layer end to end: pretrained encoders at ``finetune.encoder_lr``
    (discriminative fine-tuning), a randomly initialised model everywhere at ``finetune.lr``."""
    model.requires_grad_(True)  # a copy of a frozen encoder carries requires_grad=False
    clf = make_classifier(model, ctx.info.num_outputs, "linear", ctx.cfg.mlp_hidden, freeze_encoders=False)
    apply_freeze(clf.model, ctx.cfg.freeze)
    fit_with_engine(ctx, clf, name, cohort_dataset(ctx.data, ctx.train_rows, ctx.cfg.augment),
                    cohort_dataset(ctx.data, ctx.val_rows),
                    {"model.model.": ctx.cfg.encoder_lr} if pretrained else None, ctx.cfg.modality_dropout)
    return FusedPredictor(name, clf.to(ctx.data.device), ctx.info.kind, "linear", ctx.cfg.mlp_hidden, frozen=False)


def apply_freeze(model: nn.Module, names: List[str]) -> None:
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


@register_model("full", "head")
def full(ctx: HeadContext) -> FusedPredictor:
    """Fine-tune a copy of the (pre)trained model end-to-end."""
    return _end_to_end(ctx, ctx.encoder_copy(), "full", pretrained=ctx.pretrained)


@register_model("fused_scratch", "baseline")
def fused_scratch(ctx: HeadContext) -> FusedPredictor:
    """The fused model randomly initialised, trained end-to-end like ``full``."""
    return _end_to_end(ctx, ctx.new_model(), "fused_scratch", pretrained=False)


@register_model("mlp", "head")
def mlp(ctx: HeadContext) -> FusedPredictor:
    """One-hidden-layer MLP on the frozen fused embedding."""
    data = ctx.data
    clf = make_classifier(ctx.encoder, ctx.info.num_outputs, "mlp", ctx.cfg.mlp_hidden, freeze_encoders=True)

    def rows(r: np.ndarray) -> Dataset:
        return _Embeddings(data.ids[r], data.embed(clf.model, r), data.y[r])

    train = rows(ctx.train_rows)
    clf.head[0].fit(train.x)  # standardise with the training rows' statistics (as the linear probe does)
    fit_with_engine(ctx, EmbeddingHead(clf.head), "mlp", train, rows(ctx.val_rows), keep=ctx.cfg.mlp_keep)
    return FusedPredictor("mlp", clf.to(data.device).eval(), ctx.info.kind, "mlp", ctx.cfg.mlp_hidden, frozen=True)


class ImageOnlyNet(nn.Module):
    def __init__(self, encoder: nn.Module, num_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.embed_dim, num_outputs)

    def forward(self, image: Tensor) -> Tensor:
        """``image [B, C, *S]`` -> logits ``[B, K_out]``."""
        return self.fc(self.encoder.forward_features(image))

    def forward_batch(self, batch: Dict[str, Tensor]) -> Tensor:
        return self(batch["image"])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.set_grad_checkpointing(enable)


class ImageOnly(Predictor):
    variants = False

    def __init__(self, net: ImageOnlyNet, kind: str) -> None:
        self.name, self.net, self.kind = "image_only", net, kind

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        return predict_on_batches(self.net, data, rows, self.net.forward_batch, self.kind, variant)


@register_model("image_only", "baseline", reads=("image",))
def image_only(ctx: HeadContext) -> ImageOnly:
    """The image encoder architecture trained supervised from scratch, on rows with an image
    (rows without one are predicted from a blank image)."""
    data = ctx.data
    net = ImageOnlyNet(ctx.new_image_encoder(), ctx.info.num_outputs)
    has_image = np.asarray([p is not None for p in data.cohort.image_paths])
    train = ctx.train_rows[has_image[ctx.train_rows]]
    val = ctx.val_rows[has_image[ctx.val_rows]]
    if len(train) == 0:
        train = ctx.train_rows
    fit_with_engine(ctx, net, "image_only", cohort_dataset(data, train, ctx.cfg.augment), cohort_dataset(data, val))
    return ImageOnly(net.to(data.device), ctx.info.kind)

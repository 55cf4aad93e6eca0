"""One site's local round: the ordinary pretraining task trained by the ordinary engine.

:func:`local_round` loads the global weights into a fresh
:class:`~clinfusion.models.pretrain_task.PretrainTask` (same model, losses, views and modality
handling as ``clinfusion pretrain``), trains it with :class:`~clinfusion.training.engine.Trainer`
on the site's own training rows for ``federated.local_epochs`` epochs (or
``federated.local_steps`` optimizer steps drawn from them), and returns the new weights with
the site's mean losses. Contrastive negatives therefore come from the site's own batch.

* the local optimizer is fresh each round (AdamW, or SGD as in FedAvg, McMahan et al. 2017)
  at the constant rate ``pretrain.lr`` (the engine's per-fit warm-up/cosine is held flat);
* FedProx (Li et al. 2020) adds ``mu / 2 * ||w - w_global||^2`` through :class:`ProximalTask`,
  a wrapper the engine sees as any other task;
* FedBN (Li et al. 2021, ``keep_local_norm``): normalisation layers keep the site's own values
  between rounds (the server still averages them for the saved model);
* data order and views of round ``r`` at site ``s`` depend only on ``(seed, r, s)``.
"""

from __future__ import annotations

import csv
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from clinfusion.config.schema import RunConfig

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)  # BatchNorm/InstanceNorm/GroupNorm/LayerNorm


def round_seed(seed: int, rnd: int, site: str) -> int:
    """Seed of site ``site``'s local training in round ``rnd`` (stable across processes)."""
    return (seed * 1_000_003 + rnd * 7_919 + zlib.crc32(site.encode())) % (2 ** 31 - 1)


def build_task(cfg: RunConfig, schema: Any) -> nn.Module:
    """The pretraining task (model + objectives) a run's config describes, untrained."""
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask

    return PretrainTask(build_model(cfg, schema), cfg.pretrain, cfg.model.modality_dropout)


def norm_keys(task: nn.Module) -> List[str]:
    """State-dict keys of every normalisation layer of ``task`` (FedBN keeps them local)."""
    keys = []
    for name, mod in task.named_modules():
        if isinstance(mod, NORM_TYPES):
            keys += [f"{name}.{k}" for k in mod.state_dict()]
    return keys


class ProximalTask(nn.Module):
    """``task`` plus the FedProx term ``mu / 2 * sum ||p - p_global||^2`` on the trainable
    parameters (``p_global``: the weights received this round)."""

    def __init__(self, task: nn.Module, mu: float) -> None:
        super().__init__()
        self.task, self.mu, self.model = task, float(mu), task.model
        self._anchor = [p.detach().clone() for p in task.parameters()]

    def forward(self, batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        out = dict(self.task(batch))
        prox = sum(((p - a.to(p.device)) ** 2).sum() for p, a in zip(self.task.parameters(), self._anchor))
        out["loss"] = out["loss"] + 0.5 * self.mu * prox
        return out

    def after_step(self) -> None:
        if hasattr(self.task, "after_step"):
            self.task.after_step()


def _train_set(site: Any, dataset: Any, cfg: RunConfig, seed: int) -> Any:
    """The site's training set, or ``local_steps * batch_size`` rows of it drawn for this round."""
    steps = cfg.federated.local_steps
    if steps is None:
        return dataset
    n, need = len(dataset), steps * cfg.pretrain.batch_size
    order = np.concatenate([np.random.RandomState(seed + k).permutation(n) for k in range(-(-need // n))])
    return torch.utils.data.Subset(dataset, order[:need].tolist())


def _mean_losses(metrics_csv: Path) -> Dict[str, float]:
    """Mean of each ``*loss`` column over the engine's training rows in ``metrics.csv``."""
    sums: Dict[str, List[float]] = {}
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("split") != "train":
                continue
            for k, v in row.items():
                if k.endswith("loss") and v not in ("", None):
                    sums.setdefault(k, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def local_round(cfg: RunConfig, site: Any, dataset: Any, schema: Any, state: Dict[str, Tensor], rnd: int,
                local_norm: Optional[Dict[str, Tensor]] = None) -> Tuple[Dict[str, Tensor], Dict[str, float]]:
    """Train site ``site`` for one round from the global ``state``.

    Args:
        cfg: the run config (``pretrain``, ``model``, ``federated`` sections are read).
        site: :class:`~clinfusion.federated.sites.SiteData`.
        dataset: the site's training :class:`~clinfusion.datasets.dataset.CohortDataset`.
        schema: the merged preprocessing's ``TableSchema``.
        state: the global task state dict (received).
        rnd: the 1-based round number.
        local_norm: FedBN: this site's normalisation entries from its last round.

    Returns:
        ``(new task state dict, {"loss": ..., "<term>_loss": ...})``.
    """
    from clinfusion.seed import seed_everything
    from clinfusion.training.engine import Trainer
    from clinfusion.training.schedule import param_groups

    fed = cfg.federated
    seed = round_seed(cfg.seed, rnd, site.name)
    seed_everything(seed)
    if hasattr(dataset, "set_random_state"):  # views of this round: (seed, round, site) only
        dataset.set_random_state(seed)
    task = build_task(cfg, schema)
    task.load_state_dict(state)
    if local_norm:
        task.load_state_dict(local_norm, strict=False)
    trained: nn.Module = ProximalTask(task, fed.mu) if fed.strategy == "fedprox" and fed.mu > 0 else task
    pcfg = cfg.pretrain.model_copy(update={"epochs": fed.local_epochs if fed.local_steps is None else 1,
                                           "warmup_epochs": 0.0, "progress": False, "checkpoint_every_steps": None})
    with tempfile.TemporaryDirectory(prefix=f"clinfusion-site-{site.name}-") as tmp:
        trainer = Trainer(trained, pcfg, tmp, device=cfg.device, seed=seed, step_callbacks=[_constant_lr(pcfg.lr)])
        if fed.local_optimizer == "sgd":
            trainer.optimizer = torch.optim.SGD(param_groups(trained, pcfg.weight_decay), lr=pcfg.lr)
        trainer.fit(_train_set(site, dataset, cfg, seed), None)
        losses = _mean_losses(Path(tmp) / "metrics.csv")
    return {k: v.detach().cpu() for k, v in task.state_dict().items()}, losses


def _constant_lr(lr: float):
    """Step callback holding the learning rate at ``lr`` (a round is too short for a schedule;
    the engine's scheduler has already set the next step's rate when callbacks run)."""

    def hold(trainer: Any) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr

    return hold

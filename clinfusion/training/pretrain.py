"""``run_pretrain(cfg, out_dir)``: the whole self-supervised pretraining run.

Cohort -> patient-grouped splits (``splits.csv``) -> preprocessing fitted on training rows
(``preprocessing.json``) -> datasets with two image views -> :class:`MultimodalModel` +
:class:`PretrainTask` -> :class:`Trainer` with image<->table retrieval on the validation
rows after each ``retrieval_every`` epochs (``retrieval.csv``). Labels are read only to
stratify the split; they never reach an encoder (the cohort's feature columns exclude them).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from clinfusion.config.schema import RunConfig
from clinfusion.errors import ConfigError, DataError
from clinfusion.seed import seed_everything
from clinfusion.training.retrieval import format_table, retrieval_table


def make_run_splits(cfg: RunConfig, cohort: Any, run_dir: Path, resume: bool, write: bool = True) -> np.ndarray:
    """'train'/'val'/'test' per cohort row: reused from ``splits.csv`` on resume, else the
    cohort's split column (leakage-checked) or a new patient-grouped split; saved when ``write``
    (rank 0; other ranks compute the same split from the seed)."""
    from clinfusion.datasets.splits import check_given_split, load_splits, make_splits, save_splits

    path = run_dir / "splits.csv"
    if resume and path.is_file():
        frame = load_splits(path)
        if list(frame["id"]) != [str(i) for i in cohort.ids]:
            raise DataError(f"{path}: ids differ from cohort.table {cohort.table!r}; resume with the same table "
                            f"or start again with --overwrite")
        return frame["split"].to_numpy(dtype=object)
    if cfg.cohort.split_column:
        splits = check_given_split(cohort.frame[cfg.cohort.split_column].tolist(), cohort.patients,
                                   cfg.cohort.split_column)
    else:
        labels = getattr(cohort, "labels", None)
        strat = cohort.label_index if labels is not None and labels.task != "multilabel" else None
        splits = make_splits(cohort.patients, strat, cfg.split, cfg.seed)
    if write:
        save_splits(path, cohort.ids, cohort.patients, splits)
    return np.asarray(splits, dtype=object)


def _check_batch_size(cfg: RunConfig, n_train: int) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if n_train < cfg.pretrain.batch_size * world:
        per = f" x {world} processes" if world > 1 else ""
        raise ConfigError(f"pretrain.batch_size={cfg.pretrain.batch_size}{per} is larger than the training set "
                          f"({n_train} rows): lower pretrain.batch_size to at most {max(2, n_train // world)}")


def check_settings(cfg: RunConfig, cohort: Any, train_rows: np.ndarray) -> None:
    """The settings pretraining stops on only once its run folder exists, checked without writing
    anything or loading an image (``clinfusion validate`` runs it): the device, the image geometry,
    the batch size against the training rows, and the model and losses the config builds (encoder
    weights files, Hugging Face folders, loss weights). Raises the same ConfigError pretraining would."""
    from clinfusion.datasets.images import build_loader
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.distributed import resolve_device

    resolve_device(cfg.device)
    build_loader(cfg.image)
    _check_batch_size(cfg, len(train_rows))
    PretrainTask(build_model(cfg, TabularPreprocessor(cfg.cohort).fit(cohort, train_rows).schema), cfg.pretrain,
                 cfg.model.modality_dropout)


def build_datasets(cfg: RunConfig, run_dir: Path, resume: bool, write: bool = True,
                   cohort: Any = None) -> Tuple[Any, Any, Any, Any]:
    """``(cohort, preprocessor, train_ds, val_ds)`` through the one data path
    (:mod:`clinfusion.datasets.builder`: ``cohort.on_bad_image`` applied before anything
    trains; pass ``cohort`` when already loaded with ``load_run_cohort``); writes splits.csv,
    preprocessing.json and skipped_images.csv when ``write``."""
    from clinfusion.datasets.builder import build_dataset, load_run_cohort, write_skipped
    from clinfusion.datasets.preprocess import TabularPreprocessor

    if cohort is None:
        cohort = load_run_cohort(cfg.cohort, cfg.image, show=write)
    if write:
        write_skipped(cohort, run_dir)
    splits = make_run_splits(cfg, cohort, run_dir, resume, write)
    train_rows, val_rows = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    _check_batch_size(cfg, len(train_rows))
    pre_path = run_dir / "preprocessing.json"
    if resume and pre_path.is_file():
        pre = TabularPreprocessor.load(pre_path)
    else:
        pre = TabularPreprocessor(cfg.cohort).fit(cohort, np.asarray(train_rows))
        if write:
            pre.save(pre_path)
    arrays = pre.transform(cohort)
    views = cfg.pretrain.losses.simclr > 0 or cfg.pretrain.losses.byol > 0
    train = build_dataset(cohort, arrays, train_rows, cfg.image, views=views, micle=cfg.pretrain.micle, seed=cfg.seed)
    val = build_dataset(cohort, arrays, val_rows, cfg.image, views=views, micle=cfg.pretrain.micle, seed=cfg.seed + 1)
    return cohort, pre, train, val


@torch.no_grad()
def embed_pairs(model: Any, loader: Any, device: torch.device) -> Dict[str, Any]:
    """Rows having both modalities: ``image_proj``, ``table_proj`` ``[N, P]``, ``image_emb``
    ``[N, Di]``, ``table_emb`` ``[N, Dt]`` (float32, on CPU) and their ``patient`` keys."""
    model.eval()
    keys = ("image_proj", "table_proj", "image_emb", "table_emb")
    parts: Dict[str, List[Any]] = {k: [] for k in keys + ("patient",)}
    for batch in loader:
        both = batch["modality_mask"].bool().all(dim=1)
        if not bool(both.any()):
            continue
        b = {k: v[both].to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        out = model(b)
        for k in keys:
            parts[k].append(out[k].float().cpu())
        parts["patient"].extend(p for p, keep in zip(batch["patient"], both.tolist()) if keep)
    res: Dict[str, Any] = {k: torch.cat(v) if v else torch.zeros(0, 1) for k, v in parts.items() if k != "patient"}
    res["patient"] = parts["patient"]
    return res


@torch.no_grad()
def itm_accuracy(task: Any, pairs: Dict[str, Any]) -> float:
    """Image-table matching accuracy on held-out pairs: each pair plus its hardest negative of
    another patient each way (one true pair in three), scored by the task's ITM head."""
    from clinfusion.models.pretrain_task import patient_codes

    dev = next(task.parameters()).device
    group = patient_codes(pairs["patient"], dev)
    emb = {k: pairs[k].to(dev) for k in ("image_emb", "table_emb", "image_proj", "table_proj")}
    out = task.itm(task.model.fusion, emb["image_emb"], emb["table_emb"], emb["image_proj"], emb["table_proj"],
                   None, group, gather=False)
    return float(out["itm_acc"])


class RetrievalLogger:
    """``epoch_end`` callback: retrieval on the validation rows -> ``retrieval.csv`` (rank 0).

    With the ``itm`` term on, a row ``direction=itm, k=1`` is added whose ``recall`` column
    holds the ITM accuracy on the validation pairs against their hardest negatives (one
    true pair in three; ``chance`` = 2/3, the score of always answering "no match").
    """

    def __init__(self, val_ds: Any, run_dir: Path, every: int, epochs: int) -> None:
        self.val_ds, self.path, self.every, self.epochs = val_ds, run_dir / "retrieval.csv", every, epochs
        self.last: List[Dict[str, Any]] = []

    def __call__(self, trainer: Any, epoch: int) -> None:
        if not trainer.dist.is_main or len(self.val_ds) == 0:
            return
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        task = trainer.task
        pairs = embed_pairs(task.model, trainer.loader(self.val_ds, epoch, False, shard=False), trainer.device)
        n = pairs["image_proj"].shape[0]
        if n < 2:
            return
        self.last = [{"epoch": epoch + 1, **r} for r in retrieval_table(pairs["image_proj"], pairs["table_proj"])]
        if getattr(task, "weights", {}).get("itm", 0) > 0:
            task.eval()
            self.last.append({"epoch": epoch + 1, "direction": "itm", "k": 1, "recall": itm_accuracy(task, pairs),
                              "chance": 2 / 3, "n": n})
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, ["epoch", "direction", "k", "recall", "chance", "n"])
            if new:
                w.writeheader()
            w.writerows(self.last)


def check_resume(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """``cfg`` for ``--resume`` in ``run_dir``: a ConfigError (run untouched) when it changes a setting the
    run's checkpoint depends on (:func:`clinfusion.config.diff.resume_differences`); fewer epochs than
    the run's keep the run's count (the stored config keeps saying what was trained)."""
    from clinfusion.config.diff import check_resume_config

    stored = check_resume_config(cfg, run_dir)
    if stored is None:
        return cfg
    if cfg.pretrain.epochs < stored.pretrain.epochs:
        cfg = cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"epochs": stored.pretrain.epochs})})
    return cfg


def run_pretrain(cfg: RunConfig, out_dir: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> Path:
    """Pretrain on ``cfg`` into ``out_dir``; returns the run directory.

    Raises:
        RunDirError: ``out_dir`` exists without ``overwrite``/``resume``.
        ConfigError: ``pretrain.batch_size`` larger than the training set (names both).
        DataError: unusable cohort or images (one line from the data layer).
        TrainingError: the loss became NaN (names the step and the last good checkpoint).

    With ``federated.runtime`` set (``simulation``/``deployment``) the same model, losses and
    engine are trained across sites on Flower: see :mod:`clinfusion.federated`.
    """
    if cfg.federated.runtime != "off":
        from clinfusion.federated.runtime import run_federated

        return run_federated(cfg, out_dir, overwrite=overwrite, resume=resume)
    from clinfusion.config import save_config
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.engine import Trainer
    from clinfusion.training.rundir import discard_if_unresumable, prepare_run_dir

    from clinfusion.training.distributed import barrier, setup_distributed

    from clinfusion.datasets.builder import load_run_cohort

    dist = setup_distributed(cfg.device)  # no-op outside torchrun
    run_dir = Path(out_dir)
    cohort = load_run_cohort(cfg.cohort, cfg.image, show=dist.is_main)  # bad images: stop or skip, before any folder
    if resume:
        cfg = check_resume(cfg, run_dir)  # before anything in the run folder is written
    if dist.is_main:
        run_dir = prepare_run_dir(out_dir, overwrite, resume)
    barrier(dist)
    with discard_if_unresumable(run_dir, keep=resume or not dist.is_main):
        seed_everything(cfg.seed)
        cohort, pre, train_ds, val_ds = build_datasets(cfg, run_dir, resume, write=dist.is_main, cohort=cohort)
        if dist.is_main:
            save_config(cfg, run_dir / "config.yaml")
        model = build_model(cfg, pre.schema)
        task = PretrainTask(model, cfg.pretrain, cfg.model.modality_dropout)
        retrieval = RetrievalLogger(val_ds, run_dir, cfg.pretrain.retrieval_every, cfg.pretrain.epochs)
        trainer = Trainer(task, cfg.pretrain, run_dir, device=cfg.device, seed=cfg.seed, epoch_end=retrieval)
        trainer.fit(train_ds, val_ds, resume=resume)
    if trainer.dist.is_main and retrieval.last:
        print(f"retrieval on {retrieval.last[0]['n']} validation pairs (epoch {retrieval.last[0]['epoch']}):")
        print(format_table(retrieval.last))
    return run_dir

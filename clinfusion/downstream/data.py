"""The fine-tuning data view: one cohort, its preprocessed arrays, loaders and embeddings.

:class:`FinetuneData` is the only place in :mod:`clinfusion.downstream` that touches the
dataset classes; heads and baselines ask it for loaders (``(batch, rows)`` pairs, the
batch in the layout of :mod:`clinfusion.datasets.batch`), frozen embeddings and raw
feature matrices, for a set of cohort rows and a modality **variant**:

* ``all``: as recorded;
* ``no_image``: ``modality_mask[:, 0] = False`` and the image zeroed;
* ``no_table``: ``modality_mask[:, 1] = False`` and every clinical / omics value marked missing.

Folds: every head and baseline of a run sees the same :class:`Fold` objects from the one
split function :func:`clinfusion.datasets.splits.make_folds` (holdout, or with
``finetune.cv_folds = k`` patient-grouped k-fold: fold ``f`` tests, ``f+1 mod k`` validates);
:func:`fraction_rows` draws a label fraction of the training patients.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from clinfusion.config.schema import CohortConfig, FinetuneConfig, SplitConfig
from clinfusion.datasets.splits import Fold  # noqa: F401  (re-exported: heads and reports take Fold)
from clinfusion.datasets.transforms import remove_modality
from clinfusion.downstream.labels import LabelInfo, check_classes_present, targets_from_cohort



def batch_to(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class _Indexed(Dataset):
    """``(sample, cohort_row)`` so targets come from the cohort, not the sample dict. Takes
    ``(index, seed)`` pairs like the base dataset (random views seeded per sample)."""

    def __init__(self, base: Dataset, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows
        self.seeded_index = getattr(base, "seeded_index", False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Tuple[Dict[str, Any], int]:
        return self.base[i], int(self.rows[i[0] if isinstance(i, tuple) else i])


class FinetuneData:
    """Cohort + preprocessed arrays + label info, for one fine-tuning / evaluation run.

    Args:
        cohort: a loaded :class:`~clinfusion.datasets.cohort.Cohort`.
        preprocessor: a fitted ``TabularPreprocessor`` (its transform is applied once here).
        image_cfg: the run's ``ImageConfig``.
        info: label description; None for unlabelled prediction.
        batch_size, num_workers: loader settings (``finetune`` section).
        device: where models run.
        missing_features: ``error`` | ``missing`` for trained columns absent from the cohort
            (default: the preprocessor's own setting).
    """

    def __init__(self, cohort: Any, preprocessor: Any, image_cfg: Any, info: Optional[LabelInfo],
                 batch_size: int = 32, num_workers: int = 0, device: Optional[torch.device] = None,
                 missing_features: Optional[str] = None) -> None:
        self.cohort = cohort
        self.preprocessor = preprocessor
        self.arrays = preprocessor.transform(cohort, missing_features)
        self.image_cfg = image_cfg
        self.info = info
        self.y = targets_from_cohort(cohort, info) if info is not None and cohort.labels is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device or torch.device("cpu")
        self.patients = np.asarray([str(p) for p in cohort.patients])
        self.ids = np.asarray([str(i) for i in cohort.ids])
        self._datasets: Dict[Tuple[Tuple[int, ...], bool], _Indexed] = {}
        self._emb_cache: Dict[Tuple[int, str], Tuple[Optional[Dict[str, np.ndarray]], np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ loaders
    def dataset(self, rows: np.ndarray, augment: bool = False) -> Dataset:
        """``(sample, cohort_row)`` pairs over cohort ``rows`` (cached per row set, so an image
        cache is filled once); ``augment``: each image a random view (``image.augment``)."""
        from clinfusion.datasets.builder import build_dataset

        rows = np.asarray(rows, dtype=np.int64)
        key = (tuple(rows.tolist()), augment)
        if key not in self._datasets:
            self._datasets[key] = _Indexed(build_dataset(self.cohort, self.arrays, rows, self.image_cfg,
                                                         augment=augment), rows)
        return self._datasets[key]

    def loader(self, rows: np.ndarray, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """Batches ``(batch_dict, rows [B])`` over cohort ``rows``."""
        from clinfusion.datasets.builder import LoaderSettings, build_loader

        settings = self.num_workers if isinstance(self.num_workers, LoaderSettings) \
            else LoaderSettings(num_workers=self.num_workers)  # the finetune section's loader keys, or a count
        return build_loader(self.dataset(rows), self.batch_size, shuffle, settings, seed=seed)

    def batches(self, rows: np.ndarray, variant: str = "all", shuffle: bool = False,
                seed: int = 0) -> Iterator[Tuple[Dict[str, Any], np.ndarray]]:
        """Device batches with ``variant`` applied, and their cohort rows."""
        for batch, idx in self.loader(rows, shuffle=shuffle, seed=seed):
            yield remove_modality(batch_to(batch, self.device), variant), idx.numpy()

    # ------------------------------------------------------------------ embeddings
    @torch.no_grad()
    def embed(self, model: torch.nn.Module, rows: np.ndarray, variant: str = "all",
              features: str = "fused") -> np.ndarray:
        """Frozen embeddings ``[len(rows), D]`` of ``model(batch)`` (eval mode).

        ``features`` (see :data:`clinfusion.models.classifier.FEATURES`): ``fused`` ``[N, F]``,
        ``image`` ``[N, Di]``, ``table`` ``[N, Dt]`` or ``concat`` ``[N, Di + Dt]``.
        Cached per (model, variant) and per row: each row is embedded at most once, so label
        fractions (subsets of the training rows) and several frozen heads reuse the same pass.
        """
        from clinfusion.models.classifier import FEATURES

        rows = np.asarray(rows, dtype=np.int64)
        key = (id(model), variant)
        store, done = self._emb_cache.get(key, (None, np.zeros(len(self), bool)))
        todo = np.unique(rows[~done[rows]])
        if len(todo):
            was = model.training
            model.eval()
            parts: Dict[str, list] = {}
            for b, _ in self.batches(todo, variant):
                out = model(b)
                for k in ("image_emb", "table_emb", "fused"):
                    if k in out:
                        parts.setdefault(k, []).append(out[k].float().cpu().numpy())
            model.train(was)
            if store is None:
                store = {k: np.zeros((len(self), v[0].shape[1]), np.float32) for k, v in parts.items()}
            for k, v in parts.items():
                store[k][todo] = np.concatenate(v)
            done[todo] = True
            self._emb_cache[key] = (store, done)
        if store is None:
            return np.zeros((0, 0), np.float32)
        out = FEATURES[features]({k: torch.from_numpy(v[rows]) for k, v in store.items()})
        return out.numpy()

    # ------------------------------------------------------------------ raw features
    def raw_matrix(self, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        """Preprocessed clinical features ``[N, F_num + F_cat]`` float, NaN where missing.

        Numeric columns are the scaled values, categorical columns the category index
        (1..; 0 = unseen) for LightGBM's native categorical handling.
        """
        a = self.arrays
        num = np.where(a["num_missing"][rows], np.nan, a["num"][rows]).astype(np.float64)
        cat = np.where(a["cat_missing"][rows], np.nan, a["cat"][rows]).astype(np.float64)
        out = np.concatenate([num, cat], axis=1)
        if variant == "no_table":
            out[:] = np.nan
        return out

    def raw_feature_names(self) -> list:
        schema = self.preprocessor.schema
        return list(schema.numeric) + list(schema.categorical)

    def raw_frame(self, rows: np.ndarray) -> pd.DataFrame:
        """The cohort's own clinical columns for ``rows`` (a copy; categorical as str)."""
        cols = list(self.cohort.numeric) + list(self.cohort.categorical)
        frame = self.cohort.frame.iloc[rows][cols].copy()
        for c in self.cohort.categorical:
            frame[c] = frame[c].astype("string")
        return frame.reset_index(drop=True)


def stratum(cohort: Any, info: LabelInfo) -> Optional[np.ndarray]:
    """Per-row class index for stratified splits (None for multi-label)."""
    return None if info.kind == "multilabel" else np.asarray(cohort.label_index)


def make_folds(cohort: Any, rows: np.ndarray, info: LabelInfo, split_cfg: SplitConfig, cohort_cfg: CohortConfig,
               ft_cfg: FinetuneConfig, seed: int) -> Tuple[List[Fold], np.ndarray]:
    """Folds over the labelled cohort ``rows`` and the split name per row (for splits.csv),
    from the one split function :func:`clinfusion.datasets.splits.make_folds`."""
    from clinfusion.datasets.splits import make_folds as split_rows

    strat = stratum(cohort, info)
    given = cohort.frame[cohort_cfg.split_column].to_numpy()[rows] if cohort_cfg.split_column else None
    return split_rows(rows, np.asarray(cohort.patients)[rows], None if strat is None else strat[rows], split_cfg,
                      seed, k=ft_cfg.cv_folds, given=given, given_column=cohort_cfg.split_column or "split")


def fraction_rows(cohort: Any, train: np.ndarray, info: LabelInfo, y: np.ndarray, fraction: float,
                  seed: int, split: str = "training") -> np.ndarray:
    """``fraction`` of the ``split`` patients (drawn by patient, stratified, at least one per class);
    DataError if a class is left without rows."""
    if fraction < 1.0:
        from clinfusion.datasets.splits import label_fraction

        patients = np.asarray([str(p) for p in cohort.patients])
        strat = stratum(cohort, info)
        train = np.asarray(label_fraction(train, patients, strat, fraction, seed), dtype=np.int64)
    what = f"finetune.label_fractions={fraction:g} ({len(train)} {split} rows)" if fraction < 1.0 \
        else f"the {split} split ({len(train)} rows)"
    check_classes_present(y[train], info, what)
    return train

"""Patient-grouped holdout / k-fold folds and label fractions for fine-tuning.

Every head and baseline of a run sees the same :class:`Fold` objects. With
``finetune.cv_folds = k`` fold ``f`` tests on the patients of group ``f``, validates
(threshold) on group ``f+1 mod k`` and trains on the rest; otherwise one holdout split
(``cohort.split_column`` when given, else :func:`make_splits` with ``split`` fractions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from clinfusion.config.schema import CohortConfig, FinetuneConfig, SplitConfig
from clinfusion.downstream.task import LabelInfo, check_classes_present
from clinfusion.errors import DataError


@dataclass
class Fold:
    name: str  # "holdout" or "fold<k>"
    train: np.ndarray  # cohort rows
    val: np.ndarray
    test: np.ndarray


def stratum(cohort: Any, info: LabelInfo) -> Optional[np.ndarray]:
    """Per-row class index for stratified splits (None for multi-label)."""
    return None if info.task == "multilabel" else np.asarray(cohort.label_index)


def make_folds(cohort: Any, rows: np.ndarray, info: LabelInfo, split_cfg: SplitConfig, cohort_cfg: CohortConfig,
               ft_cfg: FinetuneConfig, seed: int) -> Tuple[List[Fold], np.ndarray]:
    """Folds over the labelled cohort ``rows`` and the split name per row (for splits.csv)."""
    from clinfusion.datasets.splits import check_given_split, kfold_assign, make_splits

    patients = np.asarray([str(p) for p in cohort.patients])[rows]
    strat = stratum(cohort, info)
    strat = strat[rows] if strat is not None else None
    if ft_cfg.cv_folds:
        k = ft_cfg.cv_folds
        if len(np.unique(patients)) < k:
            raise DataError(f"finetune.cv_folds={k} needs at least {k} labelled patients; "
                            f"the cohort has {len(np.unique(patients))}: lower finetune.cv_folds")
        fold_of = np.asarray(kfold_assign(patients, strat, k, seed))
        folds = []
        for f in range(k):
            test = rows[fold_of == f]
            val = rows[fold_of == (f + 1) % k]
            train = rows[(fold_of != f) & (fold_of != (f + 1) % k)]
            folds.append(Fold(f"fold{f}", train, val, test))
        return folds, np.asarray([f"fold{f}" for f in fold_of], dtype=object)
    if cohort_cfg.split_column:
        names = np.asarray(check_given_split(cohort.frame[cohort_cfg.split_column].to_numpy()[rows], patients,
                                             cohort_cfg.split_column), dtype=object)
    else:
        names = np.asarray(make_splits(patients, strat, split_cfg, seed), dtype=object)
    fold = Fold("holdout", rows[names == "train"], rows[names == "val"], rows[names == "test"])
    for part in ("train", "test"):
        if len(getattr(fold, part)) == 0:
            raise DataError(f"the {part} split is empty ({len(rows)} labelled rows): "
                            f"adjust split.val_fraction / split.test_fraction or cohort.split_column")
    return [fold], names


def fraction_rows(cohort: Any, train: np.ndarray, info: LabelInfo, y: np.ndarray, fraction: float,
                  seed: int) -> np.ndarray:
    """``fraction`` of the training patients (drawn by patient, stratified); DataError if a
    class is left without training rows."""
    if fraction < 1.0:
        from clinfusion.datasets.splits import label_fraction

        patients = np.asarray([str(p) for p in cohort.patients])
        strat = stratum(cohort, info)
        train = np.asarray(label_fraction(train, patients, strat, fraction, seed), dtype=np.int64)
    what = f"finetune.label_fractions={fraction:g} ({len(train)} training rows)" if fraction < 1.0 \
        else f"the training split ({len(train)} rows)"
    check_classes_present(y[train], info, what)
    return train

"""Patient-grouped holdout / k-fold folds and label fractions for fine-tuning.

Every head and baseline of a run sees the same :class:`Fold` objects. With
``finetune.cv_folds = k`` fold ``f`` tests on the patients of group ``f``, validates
(threshold) on group ``f+1 mod k`` and trains on the rest; otherwise one holdout split
(``cohort.split_column`` when given, else :func:`make_splits` with ``split`` fractions).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from clinfusion.config.schema import CohortConfig, FinetuneConfig, SplitConfig
from clinfusion.datasets.splits import Fold  # noqa: F401  (re-exported: heads and reports take Fold)
from clinfusion.downstream.task import LabelInfo, check_classes_present


def stratum(cohort: Any, info: LabelInfo) -> Optional[np.ndarray]:
    """Per-row class index for stratified splits (None for multi-label)."""
    return None if info.task == "multilabel" else np.asarray(cohort.label_index)


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

"""A new table through a fine-tuned run's stored preprocessing (evaluate / predict).

Checks, each a one-line :class:`~clinfusion.errors.DataError`:

* trained feature columns absent from the table are listed (unless
  ``cohort.missing_features=missing``: then the stored preprocessing treats them as missing);
* label values outside the trained classes are listed (evaluation only).

Categories never seen in training go to the unknown bucket (index 0) and are counted
per column (``unseen_categories/<col>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.heads.base import Predictor
from clinfusion.downstream.io import FinetunedRun
from clinfusion.downstream.task import LabelInfo
from clinfusion.errors import DataError


class RunPredictor(Predictor):
    """A loaded fine-tuned run as a :class:`Predictor` (modality variants supported)."""

    def __init__(self, run: FinetunedRun) -> None:
        self.run, self.name, self.variants = run, run.head, True

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        out = [self.run.predict_proba(b) for b, _ in data.batches(rows, variant)]
        return np.concatenate(out) if out else np.zeros((0, self.run.label.num_outputs))


@dataclass
class External:
    cohort: Any
    data: FinetuneData
    unseen: Dict[str, int]  # column -> rows whose category was not seen in training
    table: str


def map_labels(values: pd.Series, classes: List[str], column: str, table: str) -> np.ndarray:
    """Class index per row in the TRAINED class order (-1 = missing); unknown values -> DataError.

    Values are compared as the cohort loader writes class names (``1.0`` == ``"1"``).
    """
    from clinfusion.datasets.labels import value_strings

    text = value_strings(values)
    lookup = {c: k for k, c in enumerate(classes)}
    present = text.notna().to_numpy()
    out = np.asarray([lookup.get(v, -2) if ok else -1 for v, ok in zip(text.tolist(), present)], dtype=np.int64)
    unknown = list(dict.fromkeys(str(v) for v, i in zip(values.tolist(), out) if i == -2))
    if unknown:
        raise DataError(f"{table}: label column {column!r} has value(s) {', '.join(map(repr, unknown[:10]))} outside "
                        f"the trained classes ({', '.join(map(repr, classes))}): fix or drop those rows")
    return out


def _cohort_config(run: FinetunedRun, table: str, labelled: bool, present: List[str]):
    schema = run.preprocessor.schema
    cfg = run.cfg.cohort.model_copy(deep=True)
    cfg.table = table
    cfg.features = [c for c in schema.clinical_columns if c in present]
    cfg.categorical = [c for c in schema.categorical if c in present]
    cfg.split_column = None
    if not labelled:
        cfg.label_column = None
    return cfg


def prepare_external(run: FinetunedRun, table: Optional[str], labelled: bool) -> External:
    """Load ``table`` (default: the run's own cohort table) as the run was trained."""
    from clinfusion.datasets.builder import load_run_cohort
    from clinfusion.datasets.table import read_table

    table = table or run.cfg.cohort.table
    frame = read_table(table)
    needed = list(run.preprocessor.schema.clinical_columns)
    missing = [c for c in needed if c not in frame.columns]
    if missing and run.cfg.cohort.missing_features == "error":
        raise DataError(f"{table}: trained feature column(s) {', '.join(map(repr, missing))} are missing: add them, "
                        f"or set cohort.missing_features=missing to treat them as missing values")
    if labelled and run.label.task != "multilabel":
        col = run.label.columns[0]
        if col not in frame.columns:
            raise DataError(f"{table}: label column {col!r} is missing: add it (or use predict for unlabelled rows)")
        map_labels(frame[col], run.label.classes, col, str(table))
    cfg = _cohort_config(run, table, labelled, list(frame.columns))
    cohort = load_run_cohort(cfg, run.cfg.image, require_labels=labelled)  # cohort.on_bad_image applied here
    info: Optional[LabelInfo] = run.label if labelled else None
    data = FinetuneData(cohort, run.preprocessor, run.cfg.image, None, run.cfg.finetune.batch_size,
                        run.cfg.finetune.num_workers, next(run.model.parameters()).device,
                        missing_features=run.cfg.cohort.missing_features)
    data.info = info
    if labelled:
        data.y = _targets(cohort, run.label, str(table))
    unseen = {str(k): int(v) for k, v in (getattr(run.preprocessor, "unseen_counts", None) or {}).items()}
    return External(cohort, data, unseen, str(table))


def _targets(cohort: Any, info: LabelInfo, table: str) -> np.ndarray:
    if info.task == "multilabel":
        return np.asarray(cohort.frame[info.columns].apply(pd.to_numeric, errors="coerce"), dtype=float)
    col = info.columns[0]
    idx = map_labels(cohort.frame[col], info.classes, col, table)
    if info.task == "binary":
        return np.where(idx < 0, np.nan, idx.astype(float))
    return idx


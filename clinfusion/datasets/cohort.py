"""The cohort contract: one table row per sample -> :class:`Cohort`.

:func:`load_cohort` reads ``cohort.table`` (never modifying it), checks every configured
column, and resolves ids, patients, image paths, features (numeric / categorical),
labels (see :mod:`clinfusion.datasets.labels`) and the optional omics block (see
:mod:`clinfusion.datasets.omics`). Labels, ids, patients, image paths, the split
column and ``exclude`` are never features.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
import pandas as pd

from clinfusion.config.schema import CohortConfig
from clinfusion.datasets.labels import LabelSpec, multi_label, single_label, value_strings
from clinfusion.datasets.omics import join_omics, missing_column_error
from clinfusion.datasets.omics_store import omics_present, subset_rows
from clinfusion.datasets.table import mostly_numbers, read_table, resolve_table_path, row_number
from clinfusion.errors import ConfigError, DataError

__all__ = ["Cohort", "LabelSpec", "load_cohort", "label_columns"]


@dataclass
class Cohort:
    frame: pd.DataFrame  # a copy of the table (numeric features as float); the user's file is untouched
    root: Path  # the table's folder (image paths resolve from here)
    ids: List[str]  # N sample ids
    patients: List[str]  # N patient keys
    image_paths: List[Optional[str]]  # N absolute paths; None = no image
    numeric: List[str]  # numeric feature columns
    categorical: List[str]  # categorical feature columns
    labels: Optional[LabelSpec]  # None without (usable) label column
    label_matrix: np.ndarray  # [N, K] float, NaN = unlabelled
    label_index: np.ndarray  # [N] int64, -1 = unlabelled / multilabel
    omics: Optional[Any] = None  # [N, G] float32 OmicsMatrix (read per row), NaN rows without an omics row
    omics_columns: List[str] = field(default_factory=list)  # G omics column names
    omics_groups: Optional[List[List[int]]] = None  # column indices per gene set (+ "other")
    omics_group_names: Optional[List[str]] = None  # one name per omics group
    has_table: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [N] any clinical/omics value
    table: str = ""  # the table path as configured (for messages)
    skipped: List[dict] = field(default_factory=list)  # rows dropped by cohort.on_bad_image=skip: id, path, reason

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> "Cohort":
        """A new cohort of the given rows (in that order); every per-row field is sliced."""
        idx = np.asarray(rows, dtype=np.int64)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return Cohort(frame=self.frame.iloc[idx].reset_index(drop=True), root=self.root, ids=pick(self.ids),
                      patients=pick(self.patients), image_paths=pick(self.image_paths), numeric=list(self.numeric),
                      categorical=list(self.categorical), labels=self.labels, label_matrix=self.label_matrix[idx],
                      label_index=self.label_index[idx],
                      omics=None if self.omics is None else subset_rows(self.omics, idx), omics_columns=list(self.omics_columns),
                      omics_groups=self.omics_groups, omics_group_names=self.omics_group_names,
                      has_table=self.has_table[idx], table=self.table, skipped=list(self.skipped))


def label_columns(cfg: CohortConfig) -> List[str]:
    """The configured label column(s) as a list (empty without labels)."""
    if cfg.label_column is None:
        return []
    return [cfg.label_column] if isinstance(cfg.label_column, str) else list(cfg.label_column)


def key_columns(cfg: CohortConfig) -> List[Optional[str]]:
    """The columns that name rows and groups (id, patient, split, site, the omics join key): read as text,
    never as numbers."""
    return [cfg.id_column, cfg.patient_column, cfg.split_column, cfg.site_column,
            cfg.omics.join_on if cfg.omics is not None else None]


def _check_columns(frame: pd.DataFrame, cfg: CohortConfig, table: str) -> None:
    """Every configured column must exist (``exclude`` may name absent columns: an external
    table without, say, a text-label column is still fine)."""
    wanted = [("cohort.id_column", cfg.id_column), ("cohort.patient_column", cfg.patient_column),
              ("cohort.image_column", cfg.image_column), ("cohort.split_column", cfg.split_column),
              ("cohort.site_column", cfg.site_column)]
    wanted += [("cohort.label_column", c) for c in label_columns(cfg)]
    if cfg.features != "auto":
        wanted += [("cohort.features", c) for c in cfg.features]
    wanted += [("cohort.categorical", c) for c in cfg.categorical or []]
    if cfg.omics is not None and cfg.omics.join_on:
        wanted.append(("cohort.omics.join_on", cfg.omics.join_on))
    for key, col in wanted:
        if col is not None and col not in frame.columns:
            raise missing_column_error(col, key, table, list(frame.columns))


def _text_keys(frame: pd.DataFrame, column: Optional[str], what: str, table: str) -> List[str]:
    if column is None:
        return [str(i) for i in range(len(frame))]
    col = frame[column]
    empty = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
    if empty.any():
        more = f" (and {int(empty.sum()) - 1} more row(s))" if empty.sum() > 1 else ""
        raise DataError(f"{table}: {what} column {column!r} is empty in row {row_number(np.argmax(empty))}{more}: "
                        f"fill it in or drop the row")
    return [str(v) for v in value_strings(col)]


def _check_unique_ids(ids: Sequence[str], column: Optional[str], table: str) -> None:
    s = pd.Series(ids)
    dup = s.duplicated(keep=False).to_numpy()
    if dup.any():
        first = s[dup].iloc[0]
        rows = np.flatnonzero((s == first).to_numpy()).tolist()
        raise DataError(f"{table}: id {first!r} in column {column!r} is duplicated in rows "
                        f"{', '.join(str(row_number(r)) for r in rows[:10])}: ids must be unique (set cohort.id_column "
                        f"to a unique column)")


def _image_paths(frame: pd.DataFrame, column: Optional[str], root: Path) -> List[Optional[str]]:
    if column is None:
        return [None] * len(frame)
    out: List[Optional[str]] = []
    for v in frame[column].tolist():
        text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        out.append(None if not text else str((root / Path(text).expanduser()).resolve()))
    return out


def _feature_columns(frame: pd.DataFrame, cfg: CohortConfig) -> List[str]:
    used = {cfg.id_column, cfg.patient_column, cfg.image_column, cfg.split_column, cfg.site_column,
            *label_columns(cfg)}
    used |= set(cfg.exclude)
    if cfg.omics is not None and cfg.omics.join_on:
        used.add(cfg.omics.join_on)
    source = list(frame.columns) if cfg.features == "auto" else list(dict.fromkeys(cfg.features))
    return [c for c in source if c not in used]


def _split_types(frame: pd.DataFrame, features: List[str], cfg: CohortConfig, table: str, ids: List[str]):
    """(numeric, categorical) feature lists.

    A column not listed in ``cohort.categorical`` whose values are mostly numbers but hold some
    text (``<18``, ``5 mg``) is an error naming the first such row: read as categories, its
    numbers would silently become unordered levels (and predict would reject the same text).
    """
    declared = set(cfg.categorical or [])
    numeric, categorical = [], []
    for c in features:
        col = frame[c]
        if c in declared or pd.api.types.is_bool_dtype(col):
            categorical.append(c)
        elif pd.api.types.is_numeric_dtype(col):
            numeric.append(c)
        else:
            mostly_numeric, text = mostly_numbers(col)
            if mostly_numeric:
                row = int(np.argmax(text))
                raise DataError(f"{table}: feature {c!r} holds numbers but row {row_number(row)} (id {ids[row]!r}) has text "
                                f"{col.iloc[row]!r} ({int(text.sum())} such row(s)): fix the value(s) (leave missing "
                                f"cells empty) or list {c!r} in cohort.categorical")
            categorical.append(c)
    return numeric, categorical


def _numeric_frame(frame: pd.DataFrame, numeric: List[str]) -> pd.DataFrame:
    if numeric:
        frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    return frame


def load_cohort(cfg: CohortConfig, table: str | None = None, require_labels: bool = False) -> Cohort:
    """Read and check a cohort table.

    Args:
        cfg: the ``cohort`` config section (not modified).
        table: read this table instead of ``cfg.table`` (same column settings).
        require_labels: fine-tuning / evaluation: the label column must exist and have
            two or more classes (each multi-label column positives and negatives).

    Returns:
        :class:`Cohort` with ``N`` rows (fully empty rows dropped).

    Raises:
        DataError: table missing/unreadable, a configured column absent (with close
            matches), text in a numeric feature, duplicate ids, empty cohort, a label with
            one class, omics key problems. ConfigError: no table / no label configured.
    """
    cfg = copy.deepcopy(cfg)
    path = str(table if table is not None else cfg.table)
    if not path.strip():
        raise ConfigError("cohort.table is empty: set cohort.table to your CSV/Parquet file")
    if require_labels and not label_columns(cfg):
        raise ConfigError("cohort.label_column is not set: name the label column(s) to fine-tune or evaluate")
    frame = read_table(path, key_columns(cfg)).copy()
    frame = frame.dropna(how="all").reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(f"{path}: the cohort is empty (no non-empty rows): check the file")
    _check_columns(frame, cfg, path)
    root = resolve_table_path(path).resolve().parent
    ids = _text_keys(frame, cfg.id_column, "id", path)
    _check_unique_ids(ids, cfg.id_column, path)
    patients = _text_keys(frame, cfg.patient_column, "patient", path) if cfg.patient_column else list(ids)
    numeric, categorical = _split_types(frame, _feature_columns(frame, cfg), cfg, path, ids)
    frame = _numeric_frame(frame, numeric)
    labels, matrix, index = None, np.full((len(frame), 0), np.nan), np.full(len(frame), -1, np.int64)
    cols = label_columns(cfg)
    if isinstance(cfg.label_column, list):
        if cfg.positive_label is not None:
            raise ConfigError("cohort.positive_label applies to one binary label column, not to a multi-label list: "
                              "remove it (each multi-label column's positive is 1)")
        labels, matrix, index = multi_label(frame, cols, path, require_labels)
    elif cols:
        labels, matrix, index = single_label(frame, cols[0], path, require_labels, cfg.positive_label)
    if require_labels and labels is not None and np.all(np.isnan(matrix).all(axis=1)):
        raise DataError(f"{path}: the cohort is empty: no row has a label in {', '.join(cols)}")
    cohort = Cohort(frame=frame, root=root, ids=ids, patients=patients,
                    image_paths=_image_paths(frame, cfg.image_column, root), numeric=numeric,
                    categorical=categorical, labels=labels, label_matrix=matrix, label_index=index, table=path)
    if cfg.omics is not None:
        keys = _text_keys(frame, cfg.omics.join_on, "omics join_on", path) if cfg.omics.join_on else ids
        join = cfg.omics.join_on or cfg.id_column or "(row index)"
        cohort.omics, cohort.omics_columns, cohort.omics_groups, cohort.omics_group_names = \
            join_omics(cfg.omics, keys, join)
    clinical = frame[numeric + categorical].notna().to_numpy().any(axis=1) if numeric + categorical \
        else np.zeros(len(frame), bool)
    has_omics = omics_present(cohort.omics) if cohort.omics is not None else np.zeros(len(frame), bool)
    cohort.has_table = clinical | has_omics
    return cohort

"""Label columns -> :class:`LabelSpec`, ``label_matrix [N, K]`` and ``label_index [N]``.

* one column with two values -> ``binary`` (``label_matrix [N, 1]`` = 0/1, positive =
  ``classes[-1]``: ``cohort.positive_label``, else the second of the two sorted values);
* one column with more values -> ``multiclass`` (``label_matrix [N, K]`` one-hot);
* a list of 0/1 columns -> ``multilabel`` (``label_matrix [N, K]``, ``label_index`` = -1).

Unlabelled rows hold NaN in ``label_matrix`` and -1 in ``label_index``. Classes are
sorted numerically when every value is a number, otherwise as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from clinfusion.datasets.table import row_number
from clinfusion.errors import DataError


@dataclass
class LabelSpec:
    task: str  # binary | multiclass | multilabel
    columns: List[str]  # label column(s)
    classes: List[str]  # class names (binary: [negative, positive]); multilabel: the columns


def value_strings(series: pd.Series) -> pd.Series:
    """Values as text, NaN kept; integral floats lose their ``.0`` (``1.0`` -> ``"1"``)."""
    out = series.astype(object).copy()
    mask = series.notna()
    if pd.api.types.is_bool_dtype(series):
        out[mask] = series[mask].map(str)
        return out
    if pd.api.types.is_numeric_dtype(series):
        vals = series[mask].astype(float)
        integral = np.isfinite(vals) & (vals == np.round(vals))
        out[mask] = [str(int(v)) if ok else repr(float(v)) for v, ok in zip(vals, integral)]
        return out
    out[mask] = series[mask].map(lambda v: str(v).strip())
    out[mask & (out == "")] = np.nan
    return out


def _plain(value):
    """A numpy scalar as the Python value (so messages show ``2``, not ``np.int64(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _sorted_classes(values: pd.Series) -> List[str]:
    uniq = list(pd.unique(values.dropna()))
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return sorted(uniq)


# the words YAML 1.1 reads as booleans: a `positive_label: yes` arrives as "True"
YAML_BOOLS = {"True": ("true", "yes", "y", "on"), "False": ("false", "no", "n", "off")}


def _same_but_case(classes: List[str]) -> Optional[Tuple[str, str]]:
    """Two values that differ only in letter case (``No`` / ``no``), or None."""
    seen = {}
    for c in classes:
        if c.casefold() in seen:
            return seen[c.casefold()], c
        seen[c.casefold()] = c
    return None


def single_label(frame: pd.DataFrame, column: str, table: str, require: bool,
                 positive: Optional[str] = None) -> Tuple[Optional[LabelSpec], np.ndarray, np.ndarray]:
    """Spec, ``label_matrix [N, K]`` float and ``label_index [N]`` int64 for one column.

    ``positive`` (``cohort.positive_label``): a binary label's positive value, put last in ``classes``.
    Raises DataError for values differing only in case, or a ``positive`` that is not one of two values.
    """
    text = value_strings(frame[column])
    classes = _sorted_classes(text)
    n = len(frame)
    twin = _same_but_case([str(c) for c in classes])
    if twin:
        raise DataError(f"{table}: label column {column!r} has values that differ only in letter case, "
                        f"{twin[0]!r} and {twin[1]!r}: they would be separate classes; write them one way in the table")
    if len(classes) < 2:
        if require:
            seen = f"only {classes[0]!r}" if classes else "no values"
            raise DataError(f"{table}: label column {column!r} has one class only ({seen}): "
                            f"fine-tuning needs two classes to learn and evaluation both to measure AUROC; "
                            f"check the column or the rows kept")
        return None, np.full((n, 0), np.nan), np.full(n, -1, np.int64)
    if positive is not None:
        if positive not in classes and positive in YAML_BOOLS:  # `positive_label: yes` reads as True in YAML
            hits = [c for c in classes if str(c).lower() in YAML_BOOLS[positive]]
            positive = hits[0] if len(hits) == 1 else positive
        if positive not in classes or len(classes) != 2:
            values = ", ".join(repr(str(c)) for c in classes[:10])
            why = "is not one of its values" if positive not in classes else f"needs a binary label, it has {len(classes)} values"
            raise DataError(f"{table}: cohort.positive_label={positive!r} {why} (label column {column!r}: {values}): "
                            f"set it to one of the two values, or remove it")
        classes = [c for c in classes if c != positive] + [positive]
    lookup = {c: i for i, c in enumerate(classes)}
    index = text.map(lambda v: lookup.get(v, -1) if isinstance(v, str) else -1).to_numpy(np.int64)
    task = "binary" if len(classes) == 2 else "multiclass"
    if task == "binary":
        matrix = np.where(index < 0, np.nan, index.astype(float))[:, None]
    else:
        matrix = np.zeros((n, len(classes)))
        matrix[np.arange(n)[index >= 0], index[index >= 0]] = 1.0
        matrix[index < 0] = np.nan
    return LabelSpec(task, [column], [str(c) for c in classes]), matrix, index


def multi_label(frame: pd.DataFrame, columns: List[str], table: str,
                require: bool) -> Tuple[LabelSpec, np.ndarray, np.ndarray]:
    """Multi-label spec from 0/1 columns; ``label_matrix [N, K]`` with NaN = unknown."""
    mats = []
    for col in columns:
        vals = pd.to_numeric(frame[col].map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce")
        bad = (frame[col].notna() & ~vals.isin([0.0, 1.0])).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{table}: multi-label column {col!r} must hold 0/1, row {row_number(row)} has "
                            f"{_plain(frame[col].iloc[row])!r}: fix the value or leave the cell empty")
        if require and vals.nunique(dropna=True) < 2:
            raise DataError(f"{table}: label column {col!r} has one class only: each multi-label column "
                            f"needs positive and negative rows; drop it from cohort.label_column")
        mats.append(vals.to_numpy(float))
    matrix = np.stack(mats, axis=1) if mats else np.zeros((len(frame), 0))
    return LabelSpec("multilabel", list(columns), list(columns)), matrix, np.full(len(frame), -1, np.int64)

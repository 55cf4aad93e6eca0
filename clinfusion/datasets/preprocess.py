"""Tabular preprocessing fitted on training rows only, saved as JSON with the run.

* numeric clinical columns: z-score with the training mean / std (NaN ignored; std 0 or
  undefined -> 1); missing -> 0 with ``num_missing`` True;
* categorical columns: sorted training vocabulary, index 0 = unknown / unseen / missing;
  an unseen value gives index 0 with ``cat_missing`` False and is counted in
  :attr:`TabularPreprocessor.unseen_counts`;
* omics: z-score per column, vectorised over all ``G`` columns. The statistics are
  accumulated over chunks of training rows and the scaling is applied per row when a
  sample is read (:class:`ScaledOmics`), so wide omics never sit in memory whole.

``transform`` returns numpy arrays (layout of :mod:`clinfusion.datasets.batch`)::

    num [N, F_num] float32   num_missing [N, F_num] bool
    cat [N, F_cat] int64     cat_missing [N, F_cat] bool
    omics [N, G] float32     omics_missing [N, G] bool    (ScaledOmics views: ``a[rows]``,
                                                          ``a[rows, cols]``, ``np.asarray(a)``)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from clinfusion.config.schema import CohortConfig
from clinfusion.datasets.labels import value_strings
from clinfusion.encoders.schema import TableSchema
from clinfusion.errors import DataError

FORMAT_VERSION = 1


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean / std of ``x [N, F]`` ignoring NaN; all-NaN -> 0 / 1, std 0 -> 1."""
    if x.shape[1] == 0:
        return np.zeros(0), np.ones(0)
    ok = ~np.isnan(x)
    count = ok.sum(axis=0)
    filled = np.where(ok, x, 0.0)
    mean = np.divide(filled.sum(axis=0), count, out=np.zeros(x.shape[1]), where=count > 0)
    sq = np.where(ok, (x - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(sq, count, out=np.zeros(x.shape[1]), where=count > 0))
    std = np.where((std > 0) & np.isfinite(std), std, 1.0)
    return mean, std


def _mean_std_blocks(blocks: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_mean_std` over an iterable of ``[n_i, F]`` blocks, two passes, float64 sums.

    ``blocks`` is a zero-argument callable returning a fresh iterator (read twice).
    """
    count, total = np.zeros(width), np.zeros(width)
    for b in blocks():
        ok = ~np.isnan(b)
        count += ok.sum(axis=0)
        total += np.where(ok, b, 0.0).sum(axis=0, dtype=np.float64)
    mean = np.divide(total, count, out=np.zeros(width), where=count > 0)
    sq = np.zeros(width)
    for b in blocks():
        d = b.astype(np.float64) - mean
        sq += np.where(np.isnan(d), 0.0, d * d).sum(axis=0)
    std = np.sqrt(np.divide(sq, count, out=np.zeros(width), where=count > 0))
    std = np.where((std > 0) & np.isfinite(std), std, 1.0)
    return mean, std


class ScaledOmics:
    """``[N, G]`` view of the scaled omics (``kind="values"``, float32, 0 where missing) or of
    the missing mask (``kind="missing"``, bool), computed per row read.

    Args:
        raw: the cohort's omics (``OmicsMatrix`` or array ``[N, G_cohort]``).
        pos: ``[G]`` column of ``raw`` for each trained column (-1 = absent: missing).
        mean, std: ``[G]`` training statistics.
        kind: ``values`` or ``missing``.
    """

    ndim = 2

    def __init__(self, raw: Any, pos: np.ndarray, mean: np.ndarray, std: np.ndarray, kind: str) -> None:
        self.raw, self.pos, self.mean, self.std, self.kind = raw, pos, mean, std, kind
        self.dtype = np.dtype(np.float32 if kind == "values" else bool)

    @property
    def shape(self) -> tuple:
        return (len(self.raw), len(self.pos))

    def __len__(self) -> int:
        return len(self.raw)

    def take(self, rows: Any) -> np.ndarray:
        raw = self.raw[rows]
        single = raw.ndim == 1
        raw = np.atleast_2d(raw)
        x = np.full((raw.shape[0], len(self.pos)), np.nan, dtype=np.float64)
        ok = self.pos >= 0
        x[:, ok] = raw[:, self.pos[ok]]
        z, missing = _scale(x, self.mean, self.std)
        out = z if self.kind == "values" else missing
        return out[0] if single else out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows, rest = key[0], key[1:]
            out = self.take(rows)
            return out[rest] if np.ndim(out) == 1 else out[(slice(None),) + rest]
        return self.take(key)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(len(self.raw)))
        return out if dtype is None else out.astype(dtype)


def _scale(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    missing = np.isnan(x)
    z = (x - mean) / std
    return np.where(missing, 0.0, z).astype(np.float32), missing


def _omics_stats(omics: Any, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Training mean / std of the omics columns, read in chunks of rows (bounded memory)."""
    chunk = max(1, (1 << 18) // max(width, 1))  # ~1 MB of float32 per block

    def blocks() -> Any:
        for i in range(0, len(rows), chunk):
            yield np.asarray(omics[rows[i:i + chunk]], dtype=np.float32)

    return _mean_std_blocks(blocks, width)


class TabularPreprocessor:
    """Fit on training rows, transform any cohort with the same columns.

    Args:
        cfg: the ``cohort`` section; only ``missing_features`` is read (default ``"error"``).
    """

    def __init__(self, cfg: Optional[CohortConfig] = None) -> None:
        self.missing_features = cfg.missing_features if cfg is not None else "error"
        self.numeric: List[str] = []
        self.categorical: List[str] = []
        self.num_mean = np.zeros(0)
        self.num_std = np.ones(0)
        self.vocab: Dict[str, List[str]] = {}
        self.omics_columns: List[str] = []
        self.omics_mean = np.zeros(0)
        self.omics_std = np.ones(0)
        self.omics_groups: List[List[int]] = []
        self.group_names: List[str] = []
        self.unseen_counts: Dict[str, int] = {}
        self.fitted = False

    # ------------------------------------------------------------------ fit
    def fit(self, cohort: Any, rows: np.ndarray) -> "TabularPreprocessor":
        """Learn scaling and vocabularies from ``cohort`` rows ``rows [n]`` (training rows only)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise DataError(f"{cohort.table}: no training rows to fit the preprocessing on: check the split")
        train = cohort.frame.iloc[rows]
        self.numeric = list(cohort.numeric)
        self.categorical = list(cohort.categorical)
        num = train[self.numeric].to_numpy(dtype=float) if self.numeric else np.zeros((len(rows), 0))
        self.num_mean, self.num_std = _mean_std(num)
        self.vocab = {}
        for c in self.categorical:
            values = value_strings(train[c]).dropna()
            self.vocab[c] = sorted(set(values.tolist()))
        self.omics_columns = list(cohort.omics_columns) if cohort.omics is not None else []
        if self.omics_columns:
            self.omics_mean, self.omics_std = _omics_stats(cohort.omics, rows, len(self.omics_columns))
        else:
            self.omics_mean, self.omics_std = np.zeros(0), np.ones(0)
        self.omics_groups = [list(map(int, g)) for g in (cohort.omics_groups or [])]
        self.group_names = list(getattr(cohort, "omics_group_names", None) or [])
        self.fitted = True
        return self

    # ------------------------------------------------------------------ transform
    def _absent(self, cohort: Any, missing_features: str) -> List[str]:
        cols = set(cohort.frame.columns)
        absent = [c for c in self.numeric + self.categorical if c not in cols]
        if absent and missing_features != "missing":
            raise DataError(f"{cohort.table}: trained feature column(s) {', '.join(map(repr, absent))} are missing: "
                            f"add them, or set cohort.missing_features=missing to treat them as missing")
        return absent

    def _categorical(self, frame: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
        cat = np.zeros((n, len(self.categorical)), np.int64)
        missing = np.ones((n, len(self.categorical)), bool)
        self.unseen_counts = {}
        for j, c in enumerate(self.categorical):  # one vectorised lookup per clinical column
            if c not in frame.columns:
                continue
            text = value_strings(frame[c])
            known = pd.Index(self.vocab[c])
            idx = known.get_indexer(text.where(text.notna(), None).astype(object))
            present = text.notna().to_numpy()
            cat[:, j] = np.where(idx >= 0, idx + 1, 0)
            missing[:, j] = ~present
            unseen = int((present & (idx < 0)).sum())
            if unseen:
                self.unseen_counts[c] = unseen
        return cat, missing

    def transform(self, cohort: Any, missing_features: Optional[str] = None) -> Dict[str, np.ndarray]:
        """Arrays for every cohort row (see module docstring for keys and shapes).

        Args:
            cohort: a :class:`~clinfusion.datasets.cohort.Cohort`.
            missing_features: ``"error"`` (absent trained column -> DataError) or ``"missing"``
                (treated as all-missing); default from the config given at construction.
        """
        if not self.fitted:
            raise RuntimeError("TabularPreprocessor.transform called before fit/load")
        mode = missing_features or self.missing_features
        frame, n = cohort.frame, len(cohort.frame)
        self._absent(cohort, mode)
        num = np.full((n, len(self.numeric)), np.nan)
        present = [j for j, c in enumerate(self.numeric) if c in frame.columns]
        if present:
            cols = [self.numeric[j] for j in present]
            num[:, present] = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        num, num_missing = _scale(num, self.num_mean, self.num_std)
        cat, cat_missing = self._categorical(frame, n)
        out = {"num": num, "num_missing": num_missing, "cat": cat, "cat_missing": cat_missing}
        out["omics"], out["omics_missing"] = self._omics(cohort, n)
        return out

    def _omics(self, cohort: Any, n: int) -> tuple[Any, Any]:
        """Lazy :class:`ScaledOmics` views (values, missing): rows are scaled when read."""
        g = len(self.omics_columns)
        if g == 0:
            return np.zeros((n, 0), np.float32), np.zeros((n, 0), bool)
        given = list(getattr(cohort, "omics_columns", []) or [])
        if cohort.omics is None or not given:
            return np.zeros((n, g), np.float32), np.ones((n, g), bool)
        pos = pd.Index(given).get_indexer(self.omics_columns)  # aligned by name, vectorised
        return tuple(ScaledOmics(cohort.omics, pos, self.omics_mean, self.omics_std, kind)
                     for kind in ("values", "missing"))

    # ------------------------------------------------------------------ schema / io
    @property
    def schema(self) -> TableSchema:
        """What the tabular encoder needs: columns, cardinalities (vocab + 1), omics groups."""
        return TableSchema(
            numeric=list(self.numeric), categorical=list(self.categorical),
            cat_cardinalities=[len(self.vocab[c]) + 1 for c in self.categorical],
            omics_columns=list(self.omics_columns), omics_groups=[list(g) for g in self.omics_groups],
            group_names=list(self.group_names),
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "missing_features": self.missing_features,
            "numeric": self.numeric, "num_mean": self.num_mean.tolist(), "num_std": self.num_std.tolist(),
            "categorical": self.categorical, "vocab": self.vocab, "omics_columns": self.omics_columns,
            "omics_mean": self.omics_mean.tolist(), "omics_std": self.omics_std.tolist(),
            "omics_groups": self.omics_groups, "group_names": self.group_names,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON (no pickle) to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TabularPreprocessor":
        """Read a file written by :meth:`save`; errors name the file."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
            pre = cls()
            pre.missing_features = d.get("missing_features", "error")
            pre.numeric, pre.categorical = list(d["numeric"]), list(d["categorical"])
            pre.num_mean, pre.num_std = np.asarray(d["num_mean"], float), np.asarray(d["num_std"], float)
            pre.vocab = {str(k): [str(v) for v in vs] for k, vs in d["vocab"].items()}
            pre.omics_columns = list(d["omics_columns"])
            pre.omics_mean, pre.omics_std = np.asarray(d["omics_mean"], float), np.asarray(d["omics_std"], float)
            pre.omics_groups = [list(map(int, g)) for g in d.get("omics_groups", [])]
            pre.group_names = list(d.get("group_names", []))
        except FileNotFoundError:
            raise DataError(f"preprocessing file {str(p)!r} not found: is this a clinfusion run directory?") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"preprocessing file {str(p)!r} is damaged ({type(exc).__name__}: {exc}): "
                            f"re-run training to rewrite it") from None
        pre.fitted = True
        return pre

"""Tabular preprocessing fitted federatedly: sites send sufficient statistics, never rows.

Each site sends, over its own training rows (:func:`site_stats`): per numeric (and omics)
column the count of observed values, their sum and sum of squares; per categorical column
the count of each value, leaving out every value seen on fewer than
``federated.min_category_count`` rows there (a rare value is not revealed; at that site it
maps to the unknown index 0). The server adds them up (:func:`merge_stats`) into the very
:class:`~clinfusion.datasets.preprocess.TabularPreprocessor` a pooled ``fit`` on the union
of the sites' training rows gives: mean ``S1 / n``, population std
``sqrt(S2 / n - mean^2)`` (0 or undefined -> 1), sorted union vocabulary.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from clinfusion.config.schema import CohortConfig
from clinfusion.datasets.labels import value_strings
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.errors import DataError


def _moments(x: np.ndarray) -> Dict[str, List[float]]:
    """Count, sum, sum of squares per column of ``x [n, F]`` (NaN = missing, ignored)."""
    ok = ~np.isnan(x)
    filled = np.where(ok, x, 0.0)
    return {"count": ok.sum(axis=0).astype(float).tolist(), "sum": filled.sum(axis=0).tolist(),
            "sumsq": (filled * filled).sum(axis=0).tolist()}


def _omics_moments(omics: Any, rows: np.ndarray, width: int) -> Dict[str, List[float]]:
    """:func:`_moments` of the omics block read in chunks of rows (wide omics never whole in memory)."""
    chunk = max(1, (1 << 18) // max(width, 1))
    total = {"count": np.zeros(width), "sum": np.zeros(width), "sumsq": np.zeros(width)}
    for i in range(0, len(rows), chunk):
        part = _moments(np.asarray(omics[rows[i:i + chunk]], dtype=np.float64))
        for k in total:
            total[k] += np.asarray(part[k])
    return {k: v.tolist() for k, v in total.items()}


def site_stats(cohort: Any, rows: Sequence[int], min_count: int) -> Dict[str, Any]:
    """A site's message (JSON-able): column lists, moments, category counts >= ``min_count``.

    Args:
        cohort: the site's :class:`~clinfusion.datasets.cohort.Cohort`.
        rows: its training rows ``[n]``.
        min_count: values seen on fewer rows are not sent.
    """
    rows = np.asarray(rows, dtype=np.int64)
    frame = cohort.frame.iloc[rows]
    num = frame[list(cohort.numeric)].to_numpy(dtype=float) if cohort.numeric else np.zeros((len(rows), 0))
    cats: Dict[str, Dict[str, int]] = {}
    for c in cohort.categorical:
        counts = value_strings(frame[c]).dropna().value_counts()
        cats[c] = {str(k): int(v) for k, v in counts.items() if int(v) >= min_count}
    out: Dict[str, Any] = {"rows": int(len(rows)), "numeric": list(cohort.numeric),
                           "categorical": list(cohort.categorical), "num": _moments(num), "cat": cats,
                           "omics_columns": list(cohort.omics_columns) if cohort.omics is not None else []}
    if out["omics_columns"]:
        out["omics"] = _omics_moments(cohort.omics, rows, len(out["omics_columns"]))
        out["omics_groups"] = [list(map(int, g)) for g in (cohort.omics_groups or [])]
        out["group_names"] = list(getattr(cohort, "omics_group_names", None) or [])
    return out


def _mean_std(parts: List[Dict[str, List[float]]]) -> tuple[np.ndarray, np.ndarray]:
    n = np.sum([p["count"] for p in parts], axis=0).astype(float)
    s1 = np.sum([p["sum"] for p in parts], axis=0).astype(float)
    s2 = np.sum([p["sumsq"] for p in parts], axis=0).astype(float)
    mean = np.divide(s1, n, out=np.zeros_like(s1), where=n > 0)
    var = np.divide(s2, n, out=np.zeros_like(s2), where=n > 0) - mean ** 2
    var = np.where(var > 1e-12 * np.maximum(mean ** 2, 1e-300), var, 0.0)  # rounding of a constant column -> 0
    std = np.sqrt(var)
    return mean, np.where((std > 0) & np.isfinite(std), std, 1.0)


def _check_same_columns(stats: Dict[str, Dict[str, Any]], key: str, what: str) -> None:
    first_site, first = next(iter(stats.items()))
    for site, s in stats.items():
        if s[key] != first[key]:
            extra = sorted(set(s[key]) - set(first[key]))
            lacking = sorted(set(first[key]) - set(s[key]))
            detail = (f"has {extra} that site {first_site!r} lacks" if extra else
                      f"lacks {lacking} that site {first_site!r} has" if lacking else "has them in another order")
            raise DataError(f"site {site!r}: its {what} columns differ from site {first_site!r} ({detail}): give "
                            f"every site the same columns, or list the shared ones in cohort.features")


def merge_stats(stats: Dict[str, Dict[str, Any]], cfg: CohortConfig | None = None) -> TabularPreprocessor:
    """``{site: site_stats(...)}`` -> the fitted preprocessor a pooled fit would give.

    Raises:
        DataError: sites disagree on the numeric/categorical/omics columns (names the site and
            the columns), or no site has a training row.
    """
    if not stats or sum(s["rows"] for s in stats.values()) == 0:
        raise DataError("no site has training rows to fit the preprocessing on: check the sites' tables and splits")
    for key, what in (("numeric", "numeric feature"), ("categorical", "categorical feature"),
                      ("omics_columns", "omics")):
        _check_same_columns(stats, key, what)
    parts = list(stats.values())
    pre = TabularPreprocessor(cfg)
    pre.numeric, pre.categorical = list(parts[0]["numeric"]), list(parts[0]["categorical"])
    pre.num_mean, pre.num_std = _mean_std([p["num"] for p in parts])
    pre.vocab = {c: sorted({v for p in parts for v in p["cat"][c]}) for c in pre.categorical}
    pre.omics_columns = list(parts[0]["omics_columns"])
    if pre.omics_columns:
        pre.omics_mean, pre.omics_std = _mean_std([p["omics"] for p in parts])
        pre.omics_groups = [list(g) for g in parts[0].get("omics_groups", [])]
        pre.group_names = list(parts[0].get("group_names", []))
    pre.fitted = True
    return pre

"""Patient-level bootstrap confidence intervals (Efron & Tibshirani 1993, percentile method).

Rows of one patient are correlated (several images, visits), so the resampling unit is
the **patient**: ``n`` times, draw as many patients as there are, with replacement, and
take every row of each drawn patient (a patient drawn twice contributes its rows twice).
A resample where a metric is undefined (e.g. one class only, so no AUROC) is skipped for
that metric.
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], Dict[str, float]]


def patient_row_index(patients: Sequence[str]) -> Tuple[np.ndarray, list]:
    """``(unique_patients [P], rows_per_patient: list of P int arrays)``."""
    patients = np.asarray([str(x) for x in patients])
    uniq, inverse = np.unique(patients, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    return uniq, np.split(order, np.cumsum(counts)[:-1])


def resample_rows(rows_per_patient: list, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw: the row indices of ``P`` patients drawn with replacement."""
    drawn = rng.integers(0, len(rows_per_patient), size=len(rows_per_patient))
    return np.concatenate([rows_per_patient[i] for i in drawn])


def bootstrap_ci(y, p, patients: Sequence[str], metric_fn: MetricFn, n: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> Dict[str, Tuple[float, float]]:
    """Percentile CIs of every metric ``metric_fn(y[rows], p[rows])`` returns.

    Args:
        y: labels ``[N]`` or ``[N, K]``.
        p: probabilities ``[N]`` or ``[N, K]``.
        patients: patient key per row ``[N]``.
        metric_fn: ``(y_sub, p_sub) -> {name: value}``; NaN or an exception = degenerate.
        n: resamples; ``0`` gives no intervals (empty dict).
        ci: coverage, e.g. 0.95 for the 2.5th/97.5th percentiles.
        seed: seed of the resampling generator.

    Returns:
        ``{name: (low, high)}``; ``(nan, nan)`` for a metric with no valid resample.
    """
    if n <= 0:
        return {}
    y = np.asarray(y)
    p = np.asarray(p)
    if len(y) != len(p) or len(y) != len(patients):
        raise ValueError(f"y, p and patients need one entry per row: got {len(y)}, {len(p)}, {len(patients)}")
    _, groups = patient_row_index(patients)
    rng = np.random.default_rng(seed)
    values: Dict[str, list] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            rows = resample_rows(groups, rng)
            try:
                res = metric_fn(y[rows], p[rows])
            except ValueError:
                continue
            for k, v in res.items():
                values.setdefault(k, [])
                if v is not None and np.isfinite(v):
                    values[k].append(float(v))
    alpha = (1.0 - ci) / 2.0
    out: Dict[str, Tuple[float, float]] = {}
    for k, vals in values.items():
        if vals:
            lo, hi = np.quantile(vals, [alpha, 1.0 - alpha])
            out[k] = (float(lo), float(hi))
        else:
            out[k] = (float("nan"), float("nan"))
    return out

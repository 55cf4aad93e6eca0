"""Per-subgroup metrics (fairness / robustness audit) with the largest gap per metric.

A subgroup column is categorical (each value its own group), or numeric: cut into
bands at ``evaluation.age_bands`` (e.g. ``[40, 60]`` -> ``<40``, ``40-60``, ``>=60``),
used as-is when it has at most :data:`MAX_LEVELS` values, else quartiles. Missing
values form the group ``missing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

MAX_LEVELS = 10
GAP_METRICS = ("auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier", "ece")


def _fmt(x: float) -> str:
    return f"{x:g}"


def band_labels(values: pd.Series, bands: Optional[Sequence[float]] = None) -> np.ndarray:
    """Group name per row ``[N]`` (str) for one subgroup column."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.astype(float)
        if bands:
            cuts = sorted(float(b) for b in bands)
            names = [f"<{_fmt(cuts[0])}"]
            names += [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(cuts[:-1], cuts[1:])]
            names += [f">={_fmt(cuts[-1])}"]
            idx = np.searchsorted(cuts, v.fillna(0).to_numpy(), side="right")
            out = np.array([names[i] for i in idx], dtype=object)
        elif v.nunique() > MAX_LEVELS:
            q = pd.qcut(v, 4, duplicates="drop")
            out = np.array([f"{iv.left:.3g}-{iv.right:.3g}" if isinstance(iv, pd.Interval) else "missing"
                            for iv in q], dtype=object)
        else:
            out = np.array([_fmt(x) for x in v.fillna(0)], dtype=object)
    else:
        out = values.astype(str).to_numpy(dtype=object)
    out[missing] = "missing"
    return out


@dataclass
class SubgroupResult:
    """``rows``: one dict per (column, group) with ``n``, ``n_patients`` and metrics;
    ``gaps``: ``{column: {metric: (gap, best_group, worst_group)}}`` (max - min over groups)."""

    rows: List[Dict[str, object]] = field(default_factory=list)
    gaps: Dict[str, Dict[str, tuple]] = field(default_factory=dict)

    def flat(self) -> Dict[str, float]:
        """``subgroup/<col>=<group>/<metric>`` and ``subgroup_gap/<col>/<metric>`` entries."""
        out: Dict[str, float] = {}
        for r in self.rows:
            prefix = f"subgroup/{r['column']}={r['group']}"
            for k, v in r.items():
                if k not in ("column", "group"):
                    out[f"{prefix}/{k}"] = float(v)  # type: ignore[arg-type]
        for col, per in self.gaps.items():
            for m, (gap, _, _) in per.items():
                out[f"subgroup_gap/{col}/{m}"] = float(gap)
        return out


def subgroup_metrics(groups: Dict[str, np.ndarray], y, p, patients: Sequence[str],
                     metric_fn: Callable[[np.ndarray, np.ndarray], Dict[str, float]],
                     ci_fn: Optional[Callable] = None) -> SubgroupResult:
    """Metrics per group of each column, and the largest gap per metric.

    Args:
        groups: ``{column: group name per row [N]}`` (see :func:`band_labels`).
        y, p: labels and probabilities ``[N]`` / ``[N, K]``.
        patients: patient per row ``[N]``.
        metric_fn: ``(y_sub, p_sub) -> {metric: value}``.
        ci_fn: optional ``(y_sub, p_sub, patients_sub) -> {metric: (low, high)}``; adds
            ``<metric>_ci_low`` / ``<metric>_ci_high``.
    """
    y = np.asarray(y)
    p = np.asarray(p)
    patients = np.asarray([str(x) for x in patients])
    res = SubgroupResult()
    for col, labels in groups.items():
        labels = np.asarray(labels, dtype=object)
        per_group: Dict[str, Dict[str, float]] = {}
        for g in sorted(set(labels.tolist()), key=str):
            sel = labels == g
            m = metric_fn(y[sel], p[sel])
            row: Dict[str, object] = {"column": col, "group": g, "n": float(sel.sum()),
                                      "n_patients": float(len(np.unique(patients[sel])))}
            for k, v in m.items():
                if k == "n":
                    continue
                row[k] = v
            if ci_fn is not None:
                for k, (lo, hi) in ci_fn(y[sel], p[sel], patients[sel]).items():
                    if k in m and k != "n":
                        row[f"{k}_ci_low"], row[f"{k}_ci_high"] = lo, hi
            res.rows.append(row)
            per_group[g] = m
        res.gaps[col] = _gaps(per_group)
    return res


def _gaps(per_group: Dict[str, Dict[str, float]]) -> Dict[str, tuple]:
    out: Dict[str, tuple] = {}
    for metric in GAP_METRICS:
        vals = {g: m.get(metric, float("nan")) for g, m in per_group.items()}
        vals = {g: v for g, v in vals.items() if v is not None and np.isfinite(v)}
        if len(vals) < 2:
            continue
        hi = max(vals, key=vals.get)
        lo = min(vals, key=vals.get)
        out[metric] = (vals[hi] - vals[lo], hi, lo)
    return out

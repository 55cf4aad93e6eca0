"""Evaluation: metrics, patient-bootstrap confidence intervals, subgroups, missing-modality
variants, and the flat mapping written to metrics.json.

**Metrics** (scikit-learn), shapes ``N`` rows, ``K`` outputs:

* ``binary``: ``y_true [N]`` (0/1), ``y_prob [N]`` probability of the positive class
  (``[N, 1]`` is accepted and flattened).
* ``multiclass``: ``y_true [N]`` class index, ``y_prob [N, K]`` rows summing to 1.
  AUROC/AUPRC are macro one-vs-rest; sensitivity/specificity are macro over classes of
  the arg-max prediction (the threshold does not apply).
* ``multilabel``: ``y_true [N, K]`` 0/1 (NaN = unlabelled), ``y_prob [N, K]``; each label
  is scored as a binary task on its labelled rows and the macro mean is reported. Labels
  with one class in the evaluated rows are skipped (a warning names them and
  ``n_labels_skipped`` counts them).

Expected calibration error uses equal-width bins (Naeini et al. 2015; Guo et al. 2017):
``ECE = sum_b |B_b|/N * |mean(y in B_b) - mean(p in B_b)|`` on the positive-class
probability (binary / per label) or on the top-label confidence (multiclass).
:data:`METRIC_NAMES` is the one list of metric names (comparison.csv, subgroup gaps, CV).

**Bootstrap** (Efron & Tibshirani 1993, percentile method): rows of one patient are
correlated, so the resampling unit is the patient; a resample where a metric is undefined
is skipped for that metric.

**Subgroups**: a categorical column gives one group per value; a numeric one is cut into
bands at ``evaluation.age_bands`` (``pd.cut``: ``[40, 60]`` -> ``<40``, ``40-60``, ``>=60``),
used as-is with at most :data:`MAX_LEVELS` values, else quartiles (``pd.qcut``); missing
values form the group ``missing``.

Flat keys of metrics.json: ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``;
``subgroup/<col>=<group>/<metric>`` (+ CIs, ``n``, ``n_patients``);
``subgroup_gap/<col>/<metric>``; ``no_image/<metric>``, ``no_table/<metric>`` (+ CIs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

from clinfusion.config.schema import EvaluationConfig
from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.labels import LabelInfo, labelled, metric_inputs
from clinfusion.errors import ConfigError


KINDS = ("binary", "multiclass", "multilabel")
METRIC_NAMES = (
    "auroc", "auprc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "brier", "ece",
)
Threshold = Union[None, float, Sequence[float]]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width bins over [0, 1]; ``y [N]`` 0/1 outcome, ``p [N]``."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() / len(y) * abs(y[sel].mean() - p[sel].mean())
    return float(total)


def _binary(y: np.ndarray, p: np.ndarray, threshold: float, bins: int) -> Dict[str, float]:
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    pred = (p >= threshold).astype(int)
    yi = y.astype(int)
    two = len(np.unique(yi)) == 2
    tn, fp, fn, tp = confusion_matrix(yi, pred, labels=[0, 1]).ravel()
    return {
        "auroc": float(roc_auc_score(yi, p)) if two else float("nan"),
        "auprc": float(average_precision_score(yi, p)) if two else float("nan"),
        "accuracy": float(accuracy_score(yi, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(yi, pred)) if two else float("nan"),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "brier": float(brier_score_loss(yi, p, pos_label=1)) if len(yi) else float("nan"),
        "ece": expected_calibration_error(y, p, bins),
    }


def _multiclass(y: np.ndarray, p: np.ndarray, bins: int) -> Dict[str, float]:
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=float)
    k = p.shape[1]
    onehot = np.eye(k)[y]
    pred = p.argmax(1)
    present = [c for c in range(k) if 0 < onehot[:, c].sum() < len(y)]
    cm = confusion_matrix(y, pred, labels=list(range(k)))
    tp = np.diag(cm).astype(float)
    fn = cm.sum(1) - tp
    fp = cm.sum(0) - tp
    tn = cm.sum() - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        spec = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    return {
        "auroc": float(np.mean([roc_auc_score(onehot[:, c], p[:, c]) for c in present])) if present else float("nan"),
        "auprc": float(np.mean([average_precision_score(onehot[:, c], p[:, c]) for c in present]))
        if present else float("nan"),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "sensitivity": float(np.nanmean(sens)),
        "specificity": float(np.nanmean(spec)),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error((pred == y).astype(float), p.max(1), bins),
    }


def _multilabel(y: np.ndarray, p: np.ndarray, threshold: Threshold, bins: int,
                label_names: Optional[List[str]]) -> Dict[str, float]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    k = y.shape[1]
    thr = _per_label(threshold, k)
    names = label_names or [str(i) for i in range(k)]
    per: List[Dict[str, float]] = []
    skipped = []
    for j in range(k):
        sel = ~np.isnan(y[:, j])
        if len(np.unique(y[sel, j])) < 2:
            skipped.append(names[j])
            continue
        per.append(_binary(y[sel, j], p[sel, j], thr[j], bins))
    if skipped:
        warnings.warn(f"multi-label metrics skip label(s) with one class in the evaluated rows: {', '.join(skipped)}",
                      stacklevel=3)
    out = {m: float(np.nanmean([d[m] for d in per])) if per else float("nan") for m in METRIC_NAMES}
    out["n_labels_skipped"] = float(len(skipped))
    return out


def _per_label(threshold: Threshold, k: int) -> List[float]:
    if threshold is None:
        return [0.5] * k
    if np.isscalar(threshold):
        return [float(threshold)] * k  # type: ignore[arg-type]
    thr = [float(t) for t in threshold]  # type: ignore[union-attr]
    if len(thr) != k:
        raise ValueError(f"got {len(thr)} thresholds for {k} labels")
    return thr


def compute_metrics(y_true, y_prob, kind: str, threshold: Threshold = None, ece_bins: int = 10,
                    label_names: Optional[List[str]] = None) -> Dict[str, float]:
    """All metrics of :data:`METRIC_NAMES` plus ``n`` for one evaluated set.

    Args:
        y_true: ``[N]`` (binary 0/1, multiclass index) or ``[N, K]`` (multi-label, NaN = unlabelled).
        y_prob: ``[N]``/``[N, 1]`` (binary) or ``[N, K]``.
        kind: ``binary`` | ``multiclass`` | ``multilabel``.
        threshold: operating point for binary (float) or multi-label (float or one per label);
            default 0.5; ignored for multiclass (arg-max).
        ece_bins: equal-width bins of the calibration error.
        label_names: names used in the warning about skipped labels (multi-label).

    Returns:
        flat ``{metric: value}``; undefined values (one class present) are NaN.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}; expected one of {KINDS}")
    y_prob = np.asarray(y_prob, dtype=float)
    if kind == "binary":
        out = _binary(np.asarray(y_true).ravel(), y_prob.reshape(len(y_prob), -1)[:, -1],
                      0.5 if threshold is None else float(threshold), ece_bins)
    elif kind == "multiclass":
        out = _multiclass(y_true, y_prob, ece_bins)
    else:
        out = _multilabel(y_true, y_prob, threshold, ece_bins, label_names)
    out["n"] = float(len(y_prob))
    return out


def _youden(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold maximising ``sensitivity + specificity - 1`` (Youden 1950)."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    sel = ~np.isnan(y)
    y, p = y[sel], p[sel]
    if len(np.unique(y)) < 2:
        warnings.warn("validation rows hold one class: using threshold 0.5", stacklevel=3)
        return 0.5
    fpr, tpr, thr = roc_curve(y.astype(int), p)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))


def choose_threshold(y_val, p_val, rule: str = "youden", kind: str = "binary") -> Threshold:
    """Operating point chosen on validation data.

    Returns a float (binary), one float per label (multi-label) or None (multiclass: arg-max).
    ``rule="0.5"`` returns 0.5 (per label); ``"youden"`` maximises Youden's J on ``(y_val, p_val)``.
    """
    if rule not in ("youden", "0.5"):
        raise ValueError(f"unknown threshold rule {rule!r}; expected 'youden' or '0.5'")
    if kind == "multiclass":
        return None
    p_val = np.asarray(p_val, dtype=float)
    if kind == "multilabel":
        y_val = np.asarray(y_val, dtype=float)
        if rule == "0.5":
            return [0.5] * p_val.shape[1]
        return [_youden(y_val[:, j], p_val[:, j]) for j in range(p_val.shape[1])]
    if rule == "0.5":
        return 0.5
    return _youden(y_val, p_val.reshape(len(p_val), -1)[:, -1])


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


MAX_LEVELS = 10


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
            bins = pd.cut(v.fillna(0), [-np.inf, *cuts, np.inf], right=False, labels=names)
            out = bins.astype(str).to_numpy(dtype=object)
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
    for metric in METRIC_NAMES:
        vals = {g: m.get(metric, float("nan")) for g, m in per_group.items()}
        vals = {g: v for g, v in vals.items() if v is not None and np.isfinite(v)}
        if len(vals) < 2:
            continue
        hi = max(vals, key=vals.get)
        lo = min(vals, key=vals.get)
        out[metric] = (vals[hi] - vals[lo], hi, lo)
    return out


NO_CI = ("n", "n_labels_skipped")


def metric_fn(info: LabelInfo, threshold: Threshold, bins: int):
    """``(y, probs [N, K_out]) -> {metric: value}`` for this kind and operating point."""
    def fn(y: np.ndarray, probs: np.ndarray) -> Dict[str, float]:
        yy, pp = metric_inputs(y, probs, info.kind)
        return compute_metrics(yy, pp, info.kind, threshold, bins, label_names=info.classes)
    return fn


def with_cis(point: Dict[str, float], cis: Dict[str, Tuple[float, float]], prefix: str = "") -> Dict[str, float]:
    out: Dict[str, float] = {}
    for k, v in point.items():
        out[f"{prefix}{k}"] = float(v)
        if k in NO_CI:
            continue
        lo, hi = cis.get(k, (float("nan"), float("nan")))
        out[f"{prefix}{k}_ci_low"], out[f"{prefix}{k}_ci_high"] = float(lo), float(hi)
    return out


def score(y: np.ndarray, probs: np.ndarray, patients: np.ndarray, info: LabelInfo, threshold: Threshold,
          cfg: EvaluationConfig, seed: int = 0, prefix: str = "") -> Dict[str, float]:
    """Point metrics and bootstrap CIs (``cfg.bootstrap`` patient resamples) of one row set."""
    fn = metric_fn(info, threshold, cfg.ece_bins)
    point = fn(y, probs)
    cis = bootstrap_ci(y, probs, patients, fn, n=cfg.bootstrap, ci=cfg.ci, seed=seed)
    return with_cis(point, cis, prefix)


def subgroup_columns(frame: pd.DataFrame, rows: np.ndarray, cfg: EvaluationConfig,
                     table: str = "cohort table") -> Dict[str, np.ndarray]:
    """Group name per row for each ``evaluation.subgroups`` column."""
    out = {}
    for col in cfg.subgroups:
        if col not in frame.columns:
            raise ConfigError(f"evaluation.subgroups: column {col!r} is not in {table}; "
                              f"choose from: {', '.join(map(str, frame.columns))}")
        out[col] = band_labels(frame[col].iloc[rows].reset_index(drop=True), cfg.age_bands)
    return out


def pick_threshold(pred: Any, data: FinetuneData, val_rows: np.ndarray, info: LabelInfo,
                   rule: str) -> Tuple[Threshold, float]:
    """``(operating point, validation AUROC)`` from the validation rows (0.5 and NaN when
    there are none)."""
    if len(val_rows) == 0:
        k = info.num_outputs
        return choose_threshold(np.zeros((0, k)), np.zeros((0, k)), "0.5", info.kind), float("nan")
    y_val, p_val = metric_inputs(data.y[val_rows], pred.predict(data, val_rows), info.kind)
    auroc = compute_metrics(y_val, p_val, info.kind).get("auroc", float("nan"))
    return choose_threshold(y_val, p_val, rule, info.kind), float(auroc)


def evaluate_rows(pred: Any, data: FinetuneData, rows: np.ndarray, info: LabelInfo, threshold: Threshold,
                  cfg: EvaluationConfig, seed: int = 0, full: bool = True,
                  probs: Optional[np.ndarray] = None) -> Tuple[Dict[str, float], np.ndarray]:
    """Metrics of ``pred`` on labelled ``rows``; ``full`` adds subgroups and modality variants.

    Returns ``(flat metrics, probabilities [len(rows), K_out])``.
    """
    rows = np.asarray(rows)
    if probs is None:
        probs = pred.predict(data, rows)
    ok = labelled(data.y[rows], info.kind)
    r, p = rows[ok], probs[ok]
    y, patients = data.y[r], data.patients[r]
    out = score(y, p, patients, info, threshold, cfg, seed)
    if not full:
        return out, probs
    if cfg.subgroups:
        groups = subgroup_columns(data.cohort.frame, r, cfg)
        fn = metric_fn(info, threshold, cfg.ece_bins)
        ci_fn = (lambda yy, pp, pat: bootstrap_ci(yy, pp, pat, fn, n=cfg.bootstrap, ci=cfg.ci, seed=seed)) \
            if cfg.bootstrap else None
        out.update(subgroup_metrics(groups, y, p, patients, fn, ci_fn).flat())
    if cfg.missing_modality and getattr(pred, "variants", False):
        for variant in ("no_image", "no_table"):
            pv = pred.predict(data, r, variant)
            out.update(score(y, pv, patients, info, threshold, cfg, seed, prefix=f"{variant}/"))
    return out, probs


def predictions_frame(data: FinetuneData, rows: np.ndarray, probs: np.ndarray, info: Optional[LabelInfo],
                      extra: Optional[Dict[str, Any]] = None) -> pd.DataFrame:
    """``id, patient, [label...], prob_<class>...`` for ``rows`` (binary: both classes)."""
    frame = pd.DataFrame({"id": data.ids[rows], "patient": data.patients[rows]})
    for k, v in (extra or {}).items():
        frame[k] = v
    if info is None:
        return frame
    if data.y is not None:
        y = data.y[rows]
        if info.kind == "multilabel":
            for j, c in enumerate(info.classes):
                frame[f"label_{c}"] = y[:, j]
        else:
            idx = np.asarray(np.nan_to_num(y, nan=-1), dtype=int)
            frame["label"] = [info.classes[i] if i >= 0 else "" for i in idx]
    if info.kind == "binary":
        full = np.concatenate([1.0 - probs[:, :1], probs[:, :1]], axis=1)
    else:
        full = probs
    for j, name in enumerate(info.prob_names):
        frame[name] = full[:, j]
    return frame


def json_safe(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """NaN / inf -> null so metrics.json is strict JSON."""
    return {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in metrics.items()}


def summary_row(metrics: Dict[str, float], names: Sequence[str] = METRIC_NAMES) -> Dict[str, float]:
    """The comparison.csv columns: each metric with its CI."""
    out: Dict[str, float] = {}
    for n in names:
        for suffix in ("", "_ci_low", "_ci_high"):
            out[n + suffix] = metrics.get(n + suffix, float("nan"))
    out["n_test"] = metrics.get("n", float("nan"))
    return out

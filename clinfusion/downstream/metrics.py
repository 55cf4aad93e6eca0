"""Classification metrics for binary, multiclass and multi-label tasks (scikit-learn based).

Shapes (``N`` rows, ``K`` outputs):

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
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

TASKS = ("binary", "multiclass", "multilabel")
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


def compute_metrics(y_true, y_prob, task: str, threshold: Threshold = None, ece_bins: int = 10,
                    label_names: Optional[List[str]] = None) -> Dict[str, float]:
    """All metrics of :data:`METRIC_NAMES` plus ``n`` for one evaluated set.

    Args:
        y_true: ``[N]`` (binary 0/1, multiclass index) or ``[N, K]`` (multi-label, NaN = unlabelled).
        y_prob: ``[N]``/``[N, 1]`` (binary) or ``[N, K]``.
        task: ``binary`` | ``multiclass`` | ``multilabel``.
        threshold: operating point for binary (float) or multi-label (float or one per label);
            default 0.5; ignored for multiclass (arg-max).
        ece_bins: equal-width bins of the calibration error.
        label_names: names used in the warning about skipped labels (multi-label).

    Returns:
        flat ``{metric: value}``; undefined values (one class present) are NaN.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    y_prob = np.asarray(y_prob, dtype=float)
    if task == "binary":
        out = _binary(np.asarray(y_true).ravel(), y_prob.reshape(len(y_prob), -1)[:, -1],
                      0.5 if threshold is None else float(threshold), ece_bins)
    elif task == "multiclass":
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


def choose_threshold(y_val, p_val, rule: str = "youden", task: str = "binary") -> Threshold:
    """Operating point chosen on validation data.

    Returns a float (binary), one float per label (multi-label) or None (multiclass: arg-max).
    ``rule="0.5"`` returns 0.5 (per label); ``"youden"`` maximises Youden's J on ``(y_val, p_val)``.
    """
    if rule not in ("youden", "0.5"):
        raise ValueError(f"unknown threshold rule {rule!r}; expected 'youden' or '0.5'")
    if task == "multiclass":
        return None
    p_val = np.asarray(p_val, dtype=float)
    if task == "multilabel":
        y_val = np.asarray(y_val, dtype=float)
        if rule == "0.5":
            return [0.5] * p_val.shape[1]
        return [_youden(y_val[:, j], p_val[:, j]) for j in range(p_val.shape[1])]
    if rule == "0.5":
        return 0.5
    return _youden(y_val, p_val.reshape(len(p_val), -1)[:, -1])

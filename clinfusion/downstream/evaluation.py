"""Evaluate a trained predictor: threshold on validation, metrics + patient-bootstrap CIs on
test, subgroups and missing-modality variants, as the flat mapping written to metrics.json.

Flat keys: ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``;
``subgroup/<col>=<group>/<metric>`` (+ CIs, ``n``, ``n_patients``);
``subgroup_gap/<col>/<metric>``; ``no_image/<metric>``, ``no_table/<metric>`` (+ CIs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from clinfusion.config.schema import EvaluationConfig
from clinfusion.downstream.bootstrap import bootstrap_ci
from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.metrics import Threshold, choose_threshold, compute_metrics
from clinfusion.downstream.subgroups import band_labels, subgroup_metrics
from clinfusion.downstream.task import LabelInfo, labelled, metric_inputs
from clinfusion.errors import ConfigError

NO_CI = ("n", "n_labels_skipped")


def metric_fn(info: LabelInfo, threshold: Threshold, bins: int):
    """``(y, probs [N, K_out]) -> {metric: value}`` for this task and operating point."""
    def fn(y: np.ndarray, probs: np.ndarray) -> Dict[str, float]:
        yy, pp = metric_inputs(y, probs, info.task)
        return compute_metrics(yy, pp, info.task, threshold, bins, label_names=info.classes)
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
        return choose_threshold(np.zeros((0, k)), np.zeros((0, k)), "0.5", info.task), float("nan")
    y_val, p_val = metric_inputs(data.y[val_rows], pred.predict(data, val_rows), info.task)
    auroc = compute_metrics(y_val, p_val, info.task).get("auroc", float("nan"))
    return choose_threshold(y_val, p_val, rule, info.task), float(auroc)


def evaluate_rows(pred: Any, data: FinetuneData, rows: np.ndarray, info: LabelInfo, threshold: Threshold,
                  cfg: EvaluationConfig, seed: int = 0, full: bool = True,
                  probs: Optional[np.ndarray] = None) -> Tuple[Dict[str, float], np.ndarray]:
    """Metrics of ``pred`` on labelled ``rows``; ``full`` adds subgroups and modality variants.

    Returns ``(flat metrics, probabilities [len(rows), K_out])``.
    """
    rows = np.asarray(rows)
    if probs is None:
        probs = pred.predict(data, rows)
    ok = labelled(data.y[rows], info.task)
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
        if info.task == "multilabel":
            for j, c in enumerate(info.classes):
                frame[f"label_{c}"] = y[:, j]
        else:
            idx = np.asarray(np.nan_to_num(y, nan=-1), dtype=int)
            frame["label"] = [info.classes[i] if i >= 0 else "" for i in idx]
    if info.task == "binary":
        full = np.concatenate([1.0 - probs[:, :1], probs[:, :1]], axis=1)
    else:
        full = probs
    for j, name in enumerate(info.prob_names):
        frame[name] = full[:, j]
    return frame


def json_safe(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """NaN / inf -> null so metrics.json is strict JSON."""
    return {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in metrics.items()}


def summary_row(metrics: Dict[str, float], names: List[str] = ("auroc", "auprc", "accuracy", "balanced_accuracy",
                                                              "sensitivity", "specificity", "brier", "ece")
                ) -> Dict[str, float]:
    """The comparison.csv columns: each metric with its CI."""
    out: Dict[str, float] = {}
    for n in names:
        for suffix in ("", "_ci_low", "_ci_high"):
            out[n + suffix] = metrics.get(n + suffix, float("nan"))
    out["n_test"] = metrics.get("n", float("nan"))
    return out

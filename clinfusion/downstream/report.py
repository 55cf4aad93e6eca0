"""Self-contained HTML model report (no external files, scripts or fonts).

Sections: data summary, split sizes, metrics with CIs (+ missing-modality variants),
ROC curves and reliability diagrams (matplotlib, Agg backend, base64 PNG), subgroup
table, model comparison and the label-efficiency curve. Every value that can come
from the cohort (column names, categories, ids, class names) passes through
:func:`clinfusion.reporting.html.esc` (the HTML helper shared with the explanation report).
ROC curves and reliability diagrams use scikit-learn's ``RocCurveDisplay`` and
``CalibrationDisplay`` (``sklearn.calibration.calibration_curve``, uniform bins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from clinfusion.downstream.labels import LabelInfo
from clinfusion.reporting.html import esc as E
from clinfusion.reporting.html import figure_html, table_html, write_page


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def curves(preds: pd.DataFrame, info: LabelInfo) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """``(name, y 0/1 [N], p [N])`` per ROC / reliability curve from predictions.csv."""
    out = []
    if info.kind == "multilabel":
        for c in info.classes:
            y = preds[f"label_{c}"].to_numpy(float)
            ok = ~np.isnan(y)
            out.append((c, y[ok], preds[f"prob_{c}"].to_numpy(float)[ok]))
        return out
    classes = info.classes[1:] if info.kind == "binary" else info.classes
    for c in classes:
        out.append((c, (preds["label"].astype(str) == c).to_numpy(float), preds[f"prob_{c}"].to_numpy(float)))
    return out


def roc_and_reliability(preds: pd.DataFrame, info: LabelInfo, bins: int = 10) -> str:
    """ROC curves (``RocCurveDisplay``) and a reliability diagram (``CalibrationDisplay``,
    ``bins`` equal-width bins) as two embedded PNGs."""
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import RocCurveDisplay

    plt = _plt()
    fig1, ax1 = plt.subplots(figsize=(4, 4))
    fig2, ax2 = plt.subplots(figsize=(4, 4))
    for name, y, p in curves(preds, info):
        if len(np.unique(y)) < 2:
            continue
        RocCurveDisplay.from_predictions(y, p, name=str(name), ax=ax1)
        CalibrationDisplay.from_predictions(y, p, n_bins=bins, strategy="uniform", name=str(name), ax=ax2,
                                            ref_line=False)
    for ax, title, xl, yl in ((ax1, "ROC", "1 - specificity", "sensitivity"),
                              (ax2, "Reliability", "mean predicted probability", "observed frequency")):
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(title=title, xlabel=xl, ylabel=yl, xlim=(0, 1), ylim=(0, 1))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return figure_html(fig1, "ROC curve") + figure_html(fig2, "reliability diagram")


def label_efficiency(comparison: pd.DataFrame, metric: str = "auroc") -> str:
    """AUROC (with CI band) against the label fraction, one line per model."""
    if comparison["label_fraction"].nunique() < 2:
        return "<p>One label fraction: no label-efficiency curve.</p>"
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model, g in comparison.groupby("model", sort=False):
        g = g.sort_values("label_fraction")
        ax.plot(g["label_fraction"], g[metric], marker="o", label=str(model))
        ax.fill_between(g["label_fraction"], g[f"{metric}_ci_low"], g[f"{metric}_ci_high"], alpha=0.15)
    ax.set(xscale="log", xlabel="label fraction", ylabel=metric.upper(), title="Label efficiency")
    ax.legend(fontsize=7)
    return figure_html(fig, "label efficiency")


def metrics_table(metrics: Dict[str, float], prefixes: Sequence[str] = ("", "no_image/", "no_table/")) -> pd.DataFrame:
    """Rows ``variant, metric, value, CI low, CI high`` from the flat metrics mapping."""
    rows = []
    for pre in prefixes:
        for k, v in metrics.items():
            if not k.startswith(pre) or k.endswith(("_ci_low", "_ci_high")) or k.startswith(("subgroup", "cv/")):
                continue
            name = k[len(pre):]
            if "/" in name:
                continue
            rows.append({"variant": pre.rstrip("/") or "all", "metric": name, "value": v,
                         "ci_low": metrics.get(f"{k}_ci_low", np.nan), "ci_high": metrics.get(f"{k}_ci_high", np.nan)})
    return pd.DataFrame(rows, columns=["variant", "metric", "value", "ci_low", "ci_high"])


def subgroup_table(metrics: Dict[str, float]) -> pd.DataFrame:
    """One row per ``column=group`` with n, AUROC [CI], sensitivity, specificity."""
    groups: Dict[str, Dict[str, float]] = {}
    for k, v in metrics.items():
        if k.startswith("subgroup/"):
            _, grp, m = k.split("/", 2)
            groups.setdefault(grp, {})[m] = v
    cols = ["n", "n_patients", "auroc", "auroc_ci_low", "auroc_ci_high", "sensitivity", "specificity", "ece"]
    return pd.DataFrame([{"subgroup": g, **{c: d.get(c, np.nan) for c in cols}} for g, d in groups.items()],
                        columns=["subgroup"] + cols)


def gap_lines(metrics: Dict[str, float]) -> str:
    items = [(k.split("/")[1], k.split("/")[2], v) for k, v in metrics.items() if k.startswith("subgroup_gap/")]
    if not items:
        return ""
    worst = {}
    for col, m, v in items:
        if m in ("auroc", "sensitivity", "specificity"):
            worst.setdefault(col, []).append(f"{m} {v:.3f}")
    return "<p>Largest gaps between groups: " + "; ".join(
        f"<b>{E(c)}</b>: {E(', '.join(v))}" for c, v in worst.items()) + "</p>"


def data_summary(cohort: Any, info: LabelInfo, rows: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Rows, patients, images, label kind, class counts, features."""
    n = len(cohort.ids)
    n_img = sum(p is not None for p in cohort.image_paths)
    items = [("rows", n), ("patients", len(set(map(str, cohort.patients)))), ("rows with image", n_img),
             ("label kind", info.kind), ("numeric features", ", ".join(map(str, cohort.numeric))),
             ("categorical features", ", ".join(map(str, cohort.categorical)))]
    if info.kind == "multilabel":
        m = np.asarray(cohort.label_matrix, float)
        items += [(f"positives: {c}", int(np.nansum(m[:, j]))) for j, c in enumerate(info.classes)]
    else:
        idx = np.asarray(cohort.label_index)
        items += [(f"class {c}", int((idx == k).sum())) for k, c in enumerate(info.classes)]
    return pd.DataFrame(items, columns=["item", "value"])


def finetune_report(run_dir: Path, cohort: Any, info: LabelInfo, folds: Sequence[Any], metrics: Dict[str, float],
                    comparison: pd.DataFrame, preds: pd.DataFrame, cfg: Any, primary: str = "") -> Path:
    """report.html of a fine-tuned run."""
    pid = np.asarray([str(p) for p in cohort.patients])
    parts = ("train", "val", "test")
    splits = pd.DataFrame([{"fold": f.name, **{f"{part} rows": len(getattr(f, part)) for part in parts},
                            **{f"{part} patients": len(set(pid[getattr(f, part)])) for part in parts}}
                           for f in folds])
    cmp_cols = [c for c in comparison.columns if c in ("model", "kind", "selected", "label_fraction", "n_train",
                                                       "n_folds", "val_auroc")
                or c.startswith(("auroc", "auprc", "brier", "ece"))]
    sections = [
        ("Data", table_html(data_summary(cohort, info))),
        ("Splits (patient-grouped)", table_html(splits)),
        (f"Metrics on the test set: {primary}, the head chosen on the validation patients (highest validation "
         f"AUROC; 95% patient-bootstrap CIs)", table_html(metrics_table(metrics))),
        ("ROC and calibration", roc_and_reliability(preds, info, cfg.evaluation.ece_bins)),
        ("Subgroups", gap_lines(metrics) + table_html(subgroup_table(metrics))),
        ("Model comparison (same splits; selected = chosen on validation, listed first)",
         table_html(comparison[cmp_cols])),
        ("Label efficiency", label_efficiency(comparison)),
    ]
    return write_page(Path(run_dir) / "report.html", "clinfusion fine-tuning report", sections)


def evaluation_report(out_dir: Path, cohort: Any, info: LabelInfo, metrics: Dict[str, float], preds: pd.DataFrame,
                      unseen: Dict[str, int], ece_bins: int = 10) -> Path:
    """report.html of an external evaluation (with unseen-category counts)."""
    unseen_df = pd.DataFrame([{"column": c, "rows with an unseen category": n} for c, n in unseen.items()],
                             columns=["column", "rows with an unseen category"])
    sections = [
        ("Data", table_html(data_summary(cohort, info))),
        ("Metrics (95% patient-bootstrap CIs)", table_html(metrics_table(metrics))),
        ("ROC and calibration", roc_and_reliability(preds, info, ece_bins)),
        ("Subgroups", gap_lines(metrics) + table_html(subgroup_table(metrics))),
        ("Unseen categories (mapped to the unknown bucket)", table_html(unseen_df)),
    ]
    return write_page(Path(out_dir) / "report.html", "clinfusion evaluation report", sections)

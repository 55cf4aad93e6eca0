"""Runs behind :mod:`benchmarks.quality`, through the public API only: ``run_pretrain`` then
``run_finetune`` with dotted config overrides, read back from ``comparison.csv``.

Model names in ``comparison.csv`` -> what the benchmark calls them: heads on the pretrained
fused embedding (``linear``, ``lightgbm``, ``full``) and the baselines (``tabular_lgbm``,
``image_only``, ``fused_scratch``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks._pretrain_setup import ROOT

NIH_PRETRAIN = ROOT / "configs" / "nih_cxr_demo.yaml"
NIH_FINETUNE = ROOT / "configs" / "nih_cxr_demo.yaml"
HEADS = ["linear", "lightgbm", "full"]
BASELINES = ["tabular_lgbm", "image_only", "fused_scratch"]
LABELS = {
    "tabular_lgbm": "tabular-only LightGBM",
    "image_only": "image-only, from scratch",
    "linear": "fused pretrained: linear probe",
    "lightgbm": "fused pretrained: LightGBM",
    "full": "fused pretrained: full fine-tune",
    "fused_scratch": "fused, from scratch",
}
FUSED = ("linear", "lightgbm", "full", "fused_scratch")
SINGLE = ("tabular_lgbm", "image_only")


def pretrain_finetune(pre_cfg: Optional[Path], pre_overrides: Sequence[str], ft_cfg: Optional[Path],
                      ft_overrides: Sequence[str], work: Path) -> Dict[str, Any]:
    """``run_pretrain`` then ``run_finetune --pretrained``; returns the comparison frame and timings."""
    from clinfusion.config import load_config
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.training.pretrain import run_pretrain

    t0 = time.perf_counter()
    pre = run_pretrain(load_config(pre_cfg, list(pre_overrides)), work / "pretrain")
    t1 = time.perf_counter()
    ft = run_finetune(load_config(ft_cfg, list(ft_overrides)), str(pre), work / "finetune", show=False)
    t2 = time.perf_counter()
    return {"comparison": pd.read_csv(Path(ft) / "comparison.csv"), "pretrain_s": t1 - t0, "finetune_s": t2 - t1}


def comparison_rows(comp: pd.DataFrame) -> List[Dict[str, Any]]:
    """One row per (model, label fraction): AUROC and AUPRC with their 95% CIs."""
    rows = []
    for _, r in comp.iterrows():
        row = {"model": LABELS.get(r["model"], r["model"]), "label fraction": float(r["label_fraction"]),
               "AUROC": r["auroc"], "AUROC 95% CI": f"[{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]",
               "AUPRC": r["auprc"], "AUPRC 95% CI": f"[{r['auprc_ci_low']:.3f}, {r['auprc_ci_high']:.3f}]",
               "n train": r.get("n_train", float("nan")), "n test": r.get("n_test", float("nan"))}
        if "auroc_fold_mean" in r:
            row["AUROC folds mean±sd"] = f"{r['auroc_fold_mean']:.3f} ± {r['auroc_fold_std']:.3f}"
        rows.append(row)
    return rows


def fusion_verdict(comp: pd.DataFrame, bar: float = 0.90, margin: float = 0.05) -> Dict[str, Any]:
    """Best fused vs best single-modality AUROC at the largest label fraction."""
    top = comp[comp["label_fraction"] == comp["label_fraction"].max()]
    fused = top[top["model"].isin(FUSED)]
    single = top[top["model"].isin(SINGLE)]
    f = float(fused["auroc"].max()) if len(fused) else float("nan")
    s = float(single["auroc"].max()) if len(single) else float("nan")
    best = str(fused.loc[fused["auroc"].idxmax(), "model"]) if len(fused) else "none"
    ok = bool(np.isfinite(f) and f >= bar and np.isfinite(s) and f - s >= margin)
    return {"fused_auroc": f, "best_fused": LABELS.get(best, best), "single_auroc": s, "pass": ok,
            "text": f"best fused ({LABELS.get(best, best)}) AUROC {f:.3f} vs best single-modality {s:.3f}: "
                    f"{'PASS' if ok else 'FAIL'} (bar: fused >= {bar} and >= {margin} above every single modality)"}


def nih_subset(work: Path, patients: int) -> str:
    """The first ``patients`` patients of the bundled NIH table, image paths made absolute
    (for ``--budget tiny``); returns the CSV path."""
    from clinfusion.datasets.bundled import nih_cxr_dir

    root = Path(nih_cxr_dir())
    frame = pd.read_csv(root / "clinical.csv")
    keep = frame["patient_id"].drop_duplicates().iloc[:patients]
    sub = frame[frame["patient_id"].isin(keep)].copy()
    sub["image"] = [str(root / p) for p in sub["image"]]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "nih_subset.csv"
    sub.to_csv(path, index=False)
    return str(path)


def auroc_plot(path: Path, comp: pd.DataFrame, title: str) -> Path:
    """AUROC (95% CI bars) against the label fraction, one line per model (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (name, g) in enumerate(comp.groupby("model", sort=False)):
        g = g.sort_values("label_fraction")
        x = g["label_fraction"].to_numpy() * (1 + 0.04 * (i - 2.5))  # small offsets keep CIs apart
        y = g["auroc"].to_numpy()
        err = np.vstack([y - g["auroc_ci_low"].to_numpy(), g["auroc_ci_high"].to_numpy() - y])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), marker="o", capsize=3, label=LABELS.get(name, name))
    ax.set_xscale("log")
    ax.set_xlabel("label fraction (of training patients)")
    ax.set_ylabel("AUROC (95% CI)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

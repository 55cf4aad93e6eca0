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

NIH_PRETRAIN = ROOT / "configs" / "nih_cxr_demo.yaml"  # one config per cohort drives both commands
NIH_FINETUNE = NIH_PRETRAIN
# the planted cohort's columns on the demo config (whose categorical/exclude/subgroups name NIH columns)
PLANTED_ON_DEMO = ["cohort.categorical=[sex,site]", "cohort.exclude=[]", "evaluation.subgroups=[]"]
HEADS = ["linear", "linear_image", "linear_table", "linear_concat", "mlp", "lightgbm", "full"]
BASELINES = ["tabular_lgbm", "image_only", "fused_scratch"]
LABELS = {
    "tabular_lgbm": "tabular-only LightGBM",
    "image_only": "image-only, from scratch",
    "linear": "fused pretrained: linear probe",
    "linear_image": "image embedding: linear probe",
    "linear_table": "table embedding: linear probe",
    "linear_concat": "image+table embeddings concatenated: linear probe",
    "mlp": "fused pretrained: MLP head",
    "lightgbm": "fused pretrained: LightGBM",
    "full": "fused pretrained: full fine-tune",
    "fused_scratch": "fused, from scratch",
}
DEMO_HEADS = ["linear", "linear_image", "linear_table", "linear_concat", "lightgbm"]  # configs/nih_cxr_demo.yaml
# model name -> the heads finetune's rule chooses among ("chosen_fused": the demo's heads before 2026-12-05)
CHOSEN = {"chosen_demo": DEMO_HEADS, "chosen_fused": ["linear", "lightgbm"], "chosen_all": HEADS}
LABELS.update({"chosen_demo": "chosen on validation among the demo heads (the four linear probes, lightgbm)",
               "chosen_fused": "chosen on validation among the fused linear probe and LightGBM",
               "chosen_all": "chosen on validation among every head"})
FUSED = ("linear", "linear_concat", "mlp", "lightgbm", "full", "fused_scratch")
SINGLE = ("tabular_lgbm", "image_only", "linear_image", "linear_table")  # every model that reads one input


def pretrain_finetune(pre_cfg: Optional[Path], pre_overrides: Sequence[str], ft_cfg: Optional[Path],
                      ft_overrides: Sequence[str], work: Path) -> Dict[str, Any]:
    """``run_pretrain`` then ``run_finetune --pretrained``; returns the comparison frame and timings."""
    from clinfusion.config import load_config
    from clinfusion.training.pretrain import run_pretrain

    t0 = time.perf_counter()
    pre = run_pretrain(load_config(pre_cfg, list(pre_overrides)), work / "pretrain")
    pretrain_s = time.perf_counter() - t0
    return {**finetune_from(pre, ft_cfg, ft_overrides, work), "pretrain_s": pretrain_s}


def finetune_from(pre: Path, ft_cfg: Optional[Path], ft_overrides: Sequence[str], work: Path) -> Dict[str, Any]:
    """``run_finetune --pretrained pre`` into ``work/finetune``; the comparison frame and its seconds."""
    from clinfusion.config import load_config
    from clinfusion.downstream.finetune import run_finetune

    t0 = time.perf_counter()
    ft = run_finetune(load_config(ft_cfg, list(ft_overrides)), str(pre), work / "finetune", show=False)
    return {"comparison": pd.read_csv(Path(ft) / "comparison.csv"), "finetune_s": time.perf_counter() - t0}


def oracle_aurocs(planted: Dict[str, Any], test_ids: Sequence[str], labels: Dict[str, int]) -> Dict[str, float]:
    """Bayes-oracle AUROCs of the planted truth on ``test_ids`` (image, table, both)."""
    from sklearn.metrics import roc_auc_score

    from clinfusion.datasets.synthetic import oracle_scores

    rows = {r["id"]: r for r in planted["rows"]}
    truth = {k: [rows[i][k] for i in test_ids] for k in ("pattern", "marker_true")}
    y = np.asarray([labels[i] for i in test_ids])
    return {k: float(roc_auc_score(y, v)) for k, v in oracle_scores(truth).items()}


ORACLE_OF = {"image_only": "image", "linear_image": "image", "tabular_lgbm": "table",
             "linear_table": "table"}  # every other model sees both inputs


def with_chosen(runs: pd.DataFrame, run_key: str) -> pd.DataFrame:
    """``runs`` plus, per run (``run_key``: fold or seed) and label fraction, the rows of the head
    ``clinfusion finetune``'s rule picks (highest validation AUROC; ties and NaN keep the order of
    ``finetune.heads``, as ``select_on_validation``), renamed to each :data:`CHOSEN` name: what a user
    of the toolkit gets, chosen on validation patients only."""
    extra = []
    for _, g in runs.groupby([run_key, "label_fraction"], sort=False):
        for name, heads in CHOSEN.items():
            cand = g.set_index("model").reindex([h for h in heads if h in set(g["model"])])
            if not len(cand):
                continue
            val = cand["val_auroc"].to_numpy(float)
            pick = cand.index[int(np.argmax(np.where(np.isfinite(val), val, -np.inf)))] if np.isfinite(val).any() \
                else cand.index[0]
            extra.append(g[g["model"] == pick].assign(model=name, chosen_head=pick))
    return pd.concat([runs] + extra, ignore_index=True) if extra else runs


def run_records(runs: pd.DataFrame, run_key: str) -> List[Dict[str, Any]]:
    """Every (run, model, label fraction) of a section with its validation and test AUROC: kept in the
    JSON (``runs``) so that another selection rule can be scored later without training again."""
    cols = [c for c in (run_key, "model", "chosen_head", "label_fraction", "val_auroc", "n_val_pos", "n_val_neg",
                        "auroc", "auprc", "n_train") if c in runs]
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in runs[cols].to_dict("records")]


def oracle_of(g: pd.DataFrame) -> pd.Series:
    """Per row of ``g``, the oracle AUROC for the inputs its model reads (a chosen row: its head's)."""
    heads = g["chosen_head"].fillna(g["model"]) if "chosen_head" in g else g["model"]
    return pd.Series([r[f"oracle_{ORACLE_OF.get(h, 'both')}"] for h, (_, r) in zip(heads, g.iterrows())],
                     index=g.index, dtype=float)


def mean_sd(values: Sequence[float]) -> str:
    v = np.asarray(values, float)
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v, ddof=1) if len(v) > 1 else 0.0:.3f}"


def t_ci(values: Sequence[float]) -> tuple:
    """95% t-interval of the mean of ``values`` (folds or seeds)."""
    from scipy.stats import t

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    h = t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - h), float(v.mean() + h)


def seed_rows(runs: pd.DataFrame, oracle: bool) -> List[Dict[str, Any]]:
    """One row per (model, label fraction) over the runs (seeds or folds): mean ± sd of AUROC and
    AUPRC, each run's AUROC, the 95% t-interval of the mean (and the oracle gap when ``oracle``)."""
    out = []
    for (model, frac), g in runs.groupby(["model", "label_fraction"], sort=False):
        lo, hi = t_ci(g["auroc"])
        row = {"model": LABELS.get(model, model), "label fraction": float(frac), "AUROC": float(g["auroc"].mean()),
               "AUROC mean ± sd": mean_sd(g["auroc"]), "AUROC 95% CI (t, over runs)": f"[{lo:.3f}, {hi:.3f}]",
               "AUPRC mean ± sd": mean_sd(g["auprc"]), "AUPRC": float(g["auprc"].mean()),
               "AUROC per run": " ".join(f"{v:.3f}" for v in g["auroc"]), "runs": int(len(g)),
               "chosen per run": (" ".join(str(h) for h in g["chosen_head"]) if "chosen_head" in g
                                  and g["chosen_head"].notna().all() else "")}
        if oracle:
            o = oracle_of(g)
            row["oracle (same inputs)"] = float(o.mean())
            row["gap to oracle"] = float((o - g["auroc"]).mean())
        out.append(row)
    return out


def goal_sentences(runs: pd.DataFrame, dims: int, probe_bar: float = 0.85, gap: float = 0.05) -> List[Dict[str, Any]]:
    """The issue's goals at 100% labels, each a sentence computed from the seed means."""
    top = runs[runs["label_fraction"] == runs["label_fraction"].max()]
    mean = top.groupby("model")["auroc"].mean()
    goals = []
    if "linear" in mean:
        v = float(mean["linear"])
        goals.append({"goal": f"{dims}D fused linear probe >= {probe_bar}", "met": v >= probe_bar,
                      "text": f"{dims}D fused linear probe AUROC >= {probe_bar} at 100% labels: "
                              f"{'yes' if v >= probe_bar else 'no'} ({v:.3f})"})
    for model in [m for m in mean.index if m != "tabular_lgbm"]:
        o = float(oracle_of(top[top["model"] == model]).mean())
        v = float(mean[model])
        ok = o - v <= gap
        goals.append({"goal": f"{dims}D {model} within {gap} of its oracle", "met": bool(ok),
                      "text": f"{dims}D {LABELS.get(model, model)} within {gap} of its oracle: "
                              f"{'yes' if ok else 'no'} ({v:.3f} vs oracle {o:.3f})"})
    return goals


def fused_vs_single(runs: pd.DataFrame, where: str) -> str:
    """Per label fraction and per fused model (none is picked): does its mean AUROC beat the best
    single-input model (the two baselines and the probes on the image / table embedding alone)?"""
    parts = []
    for frac, g in runs.groupby("label_fraction"):
        mean = g.groupby("model", sort=False)["auroc"].mean()
        single = mean[[m for m in mean.index if m in SINGLE]]
        if not len(single):
            continue
        s = float(single.max())
        each = ", ".join(f"{m} {'yes' if v > s else 'no'} ({v:.3f})" for m, v in mean.items() if m in FUSED)
        parts.append(f"at {frac:g} labels, vs {LABELS.get(single.idxmax(), single.idxmax())} {s:.3f}: {each}")
    return f"fused beats the best single input on {where}: " + "; ".join(parts)


def nih_subset(work: Path, patients: Optional[int]) -> str:
    """The bundled NIH table (its first ``patients`` patients, or all with None), image paths
    made absolute; returns the CSV path."""
    from clinfusion.datasets.bundled import nih_cxr_dir

    root = Path(nih_cxr_dir())
    frame = pd.read_csv(root / "clinical.csv")
    if patients:
        frame = frame[frame["patient_id"].isin(frame["patient_id"].drop_duplicates().iloc[:patients])]
    sub = frame.copy()
    sub["image"] = [str(root / p) for p in sub["image"]]
    work.mkdir(parents=True, exist_ok=True)
    path = work / "nih_subset.csv"
    sub.to_csv(path, index=False)
    return str(path)


def fold_tables(table: str, k: int, seed: int, work: Path) -> List[str]:
    """``k`` copies of ``table`` with a ``cv_split`` column: fold f's patients are ``test``,
    fold f+1's ``val``, the rest ``train`` (patient-grouped, stratified on ``abnormal``).
    Pretraining and fine-tuning on copy f both read it (``cohort.split_column=cv_split``), so
    fold f's test patients are never seen in pretraining."""
    from clinfusion.datasets.splits import kfold_assign

    frame = pd.read_csv(table)
    fold = kfold_assign(frame["patient_id"].astype(str).to_numpy(), frame["abnormal"].to_numpy(), k, seed)
    paths = []
    for f in range(k):
        out = frame.copy()
        out["cv_split"] = np.where(fold == f, "test", np.where(fold == (f + 1) % k, "val", "train"))
        path = work / f"nih_fold{f}.csv"
        out.to_csv(path, index=False)
        paths.append(str(path))
    return paths


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

"""Pretraining recipes compared by label efficiency (called from :mod:`benchmarks.quality`).

Each recipe pretrains the same small joint model with a different set of
``pretrain.losses``, then ``run_finetune`` trains the linear probe on the frozen fused
embedding at label fractions 1% / 10% / 100% of the training patients; the fused model
trained from scratch on the same labelled rows (baseline ``fused_scratch``) is the
reference. Recipes (weights of ``pretrain.losses``):

* ``clip``: CLIP only.
* ``clip+unimodal``: CLIP + SimCLR (image) + SCARF (table).
* ``clip+unimodal+fusion``: the above + ITM + masked_fused (the fusion learns too);
  the recipe declared in advance for the verdict (no recipe is picked on test AUROC).
* ``mae+clip``: MAE + CLIP on a ViT image encoder (MAE needs a ViT).

All through the public API (``run_pretrain`` / ``run_finetune``); planted cohorts of
:func:`clinfusion.datasets.synthetic.make_synthetic_cohort` in 2D and 3D, several seeds
(the cohort, the split and the weights change with the seed), and optionally NIH.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks._quality_runs import mean_sd  # sd over seeds with ddof 1, as every other table

RECIPES: Dict[str, Dict[str, float]] = {  # the demo config's weights where a term is on
    "clip": dict(clip=0.5),
    "clip+unimodal": dict(clip=0.5, simclr=1.0, scarf=0.5, masked_features=2.0),
    "clip+unimodal+fusion": dict(clip=0.5, simclr=1.0, scarf=0.5, masked_features=2.0, itm=0.5, masked_fused=0.5),
    "mae+clip": dict(clip=0.5, mae=1.0),
}
DECLARED = "clip+unimodal+fusion"  # judged by the goals; the others are reported beside it
FRACTIONS = (0.01, 0.1, 1.0)
BUDGETS: Dict[str, Dict[str, Any]] = {  # quality.py's --budget; epochs None = the demo config's own (24 / 30)
    "tiny": dict(rec_patients=40, rec_seeds=[0], rec_pre_epochs=1, rec_ft_epochs=1, rec_size={2: 16, 3: 8},
                 dims=[2], rec_nih=False, rec_nih_epochs=1, extra=["pretrain.batch_size=8", "finetune.batch_size=8"]),
    "small": dict(rec_patients=300, rec_seeds=[0, 1, 2], rec_pre_epochs=None, rec_ft_epochs=None, rec_size={2: 32, 3: 24},
                  dims=[2, 3], rec_nih=False, rec_nih_epochs=None, extra=[]),
    "full": dict(rec_patients=300, rec_seeds=[0, 1, 2], rec_pre_epochs=None, rec_ft_epochs=None, rec_size={2: 32, 3: 24},
                 dims=[2, 3], rec_nih=True, rec_nih_epochs=None, extra=[]),
}
VIT = ["model.image_encoder.name=vit_tiny", "model.image_encoder.width=32", "model.image_encoder.pool=avg",
       "model.image_encoder.stem_stride=null", "pretrain.mae.decoder_dim=32",
       "pretrain.mae.decoder_heads=2", "pretrain.mae.decoder_depth=1", "pretrain.mae.mask_ratio=0.5"]


# A recipe run for longer: (its losses' recipe, factor on pretrain.epochs). Only label_efficiency
# runs it (added after one 3D pool draw, seed 100, scored a validation AUROC at 10% of 0.896 with 48
# pretraining epochs against 0.862 with 24); benchmarks.quality's tables keep RECIPES.
LONGER: Dict[str, tuple] = {"clip+unimodal+fusion, 2x epochs": ("clip+unimodal+fusion", 2)}


def _losses(recipe: str, pre: Sequence[str] = ()) -> List[str]:
    """``pretrain.losses.*`` overrides of ``recipe`` (every other term off), the ViT for MAE and, for a
    ``LONGER`` recipe, ``pretrain.epochs`` = its factor x the epochs the demo config has under ``pre``."""
    from benchmarks._quality_runs import NIH_PRETRAIN
    from clinfusion.config.loader import load_config

    base, factor = LONGER.get(recipe, (recipe, 1))
    w = {"clip": 0.0, "simclr": 0.0, "byol": 0.0, "scarf": 0.0, "masked_features": 0.0, "itm": 0.0,
         "masked_fused": 0.0, "mae": 0.0, **RECIPES[base]}
    out = [f"pretrain.losses.{k}={v:g}" for k, v in w.items()] + (VIT if base.startswith("mae") else [])
    if factor != 1:
        epochs = load_config(NIH_PRETRAIN, [o for o in pre if o.startswith("pretrain.epochs=")]).pretrain.epochs
        out.append(f"pretrain.epochs={factor * epochs}")
    return out


def _epochs(b: Dict[str, Any], key: str, section: str) -> List[str]:
    return [f"{section}.epochs={b[key]}"] if b.get(key) else []


def run_cell(common: Sequence[str], pre: Sequence[str], ft: Sequence[str], work: Path, recipes: Sequence[str],
             reuse: Optional[Path] = None) -> pd.DataFrame:
    """Every recipe on one cohort/seed; rows ``recipe, model (linear | fused_scratch), label_fraction, auroc,
    val_auroc, n_train, seconds``. With ``reuse`` (an earlier cell's ``work``), fine-tune that cell's
    pretrained runs again instead of pretraining (``pre`` is then unused)."""
    from benchmarks._quality_runs import NIH_PRETRAIN, finetune_from, pretrain_finetune

    frames = []
    for i, recipe in enumerate(recipes):
        base = ["fused_scratch"] if i == 0 else []  # the from-scratch reference once per cell
        extra = [f"finetune.baselines=[{','.join(base)}]"]
        vit = VIT if LONGER.get(recipe, (recipe,))[0].startswith("mae") else []  # as in _losses
        folder = re.sub(r"[^a-z0-9]+", "_", recipe)
        ft_overrides = list(common) + list(ft) + extra + vit
        t0 = time.perf_counter()
        if reuse is None:
            r = pretrain_finetune(NIH_PRETRAIN, list(common) + list(pre) + _losses(recipe, pre), NIH_PRETRAIN,
                                  ft_overrides, work / folder)
        else:
            r = finetune_from(reuse / folder / "pretrain", NIH_PRETRAIN, ft_overrides, work / folder)
        comp = r["comparison"]
        comp = comp[comp["model"].isin(["linear", "fused_scratch"])].copy()
        comp["recipe"] = np.where(comp["model"] == "fused_scratch", "(from scratch)", recipe)
        comp["seconds"] = time.perf_counter() - t0
        frames.append(comp[["recipe", "model", "label_fraction", "auroc", "val_auroc", "n_train", "seconds"]])
    return pd.concat(frames, ignore_index=True)


CHOSEN = "(chosen on validation)"


def chosen_on_validation(df: pd.DataFrame, recipes: Sequence[str], fraction: float = 0.1) -> pd.DataFrame:
    """Per seed (and per ``setting`` where ``df`` has one), the rows of the recipe whose probe has the
    highest validation AUROC at ``fraction`` labels, relabelled ``CHOSEN`` with column ``chosen``
    naming it; all its fractions are kept so that its 100% is its own. Test AUROC plays no part;
    ties keep the order of ``recipes``."""
    keys = [k for k in ("setting", "seed") if k in df.columns]
    out = []
    for _, g in df.groupby(keys, sort=False):
        at = g[np.isclose(g["label_fraction"], fraction)]
        scores = {r: float(at.loc[at["recipe"] == r, "val_auroc"].mean()) for r in recipes}
        best = max(recipes, key=lambda r: scores[r] if np.isfinite(scores[r]) else -np.inf)
        out.append(g[g["recipe"] == best].assign(recipe=CHOSEN, chosen=best))
    return pd.concat(out, ignore_index=True)


def synthetic_runs(dims: int, seeds: Sequence[int], b: Dict[str, Any], work: Path, device: str) -> pd.DataFrame:
    """Planted cohort in ``dims`` D, one cell per seed."""
    from benchmarks._quality_runs import PLANTED_ON_DEMO
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    frames = []
    for seed in seeds:
        synth = make_synthetic_cohort(work / f"rec{dims}d_s{seed}" / "cohort", n_patients=b["rec_patients"],
                                      images_per_patient=1, spatial_dims=dims, size=b["rec_size"][dims], seed=seed)
        common = list(synth.overrides) + list(b["extra"]) + PLANTED_ON_DEMO + [
            f"device={device}", f"seed={seed}", "split.val_fraction=0.15", "split.test_fraction=0.3",
            "evaluation.bootstrap=0", "evaluation.missing_modality=false", "image.cache=memory"]
        pre = _epochs(b, "rec_pre_epochs", "pretrain") + ["pretrain.progress=false"]
        ft = ["finetune.heads=[linear]", f"finetune.label_fractions=[{','.join(f'{f:g}' for f in FRACTIONS)}]"] + \
            _epochs(b, "rec_ft_epochs", "finetune")
        df = run_cell(common, pre, ft, work / f"rec{dims}d_s{seed}", list(RECIPES))
        df["seed"] = seed
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def table_rows(df: pd.DataFrame) -> List[Dict[str, Any]]:
    """One row per recipe: AUROC mean ± sd over seeds at each fraction, plus every seed's value."""
    rows = []
    for recipe, g in df.groupby("recipe", sort=False):
        row: Dict[str, Any] = {"recipe": recipe}
        for f in FRACTIONS:
            v = g.loc[np.isclose(g["label_fraction"], f), "auroc"].to_numpy(dtype=float)
            row[f"AUROC {f:g} mean±sd"] = mean_sd(v) if len(v) else "n/a"
            row[f"AUROC {f:g} per seed"] = " ".join(f"{x:.3f}" for x in v)
        row["n train (100%)"] = float(g.loc[np.isclose(g["label_fraction"], 1.0), "n_train"].mean())
        row["seconds per seed"] = float(g.groupby("seed")["seconds"].first().mean()) if "seed" in g else float("nan")
        rows.append(row)
    return rows


def verdict(df: pd.DataFrame, recipe: str = DECLARED, gain: float = 0.10, gap: float = 0.05,
            rank: bool = True) -> Dict[str, Any]:
    """The declared recipe's probe at 10% vs from scratch at 10% and vs its own 100% (means over seeds);
    ``rank`` adds which recipe has the highest test mean at 10% (information only, never the verdict)."""
    def mean(r: str, f: float) -> float:
        v = df.loc[(df["recipe"] == r) & np.isclose(df["label_fraction"], f), "auroc"]
        return float(v.mean()) if len(v) else float("nan")

    p10, p100, s10 = mean(recipe, 0.1), mean(recipe, 1.0), mean("(from scratch)", 0.1)
    ok_gain = bool(np.isfinite(p10) and np.isfinite(s10) and p10 - s10 >= gain)
    ok_gap = bool(np.isfinite(p10) and np.isfinite(p100) and p100 - p10 <= gap)
    best10 = max((r for r in RECIPES), key=lambda r: mean(r, 0.1) if np.isfinite(mean(r, 0.1)) else -1)
    text = (f"{recipe} probe at 10% labels {p10:.3f} vs fused from scratch at 10% {s10:.3f} (gain {p10 - s10:+.3f}, "
            f"goal >= {gain}: {'PASS' if ok_gain else 'FAIL'}); vs its own 100% {p100:.3f} (gap {p100 - p10:.3f}, goal "
            f"<= {gap}: {'PASS' if ok_gap else 'FAIL'})")
    if rank:
        text += (f"; highest mean at 10% among recipes: {best10} ({mean(best10, 0.1):.3f}, shown for information, "
                 f"not used for the verdict)")
    return {"recipe": recipe, "probe_10": p10, "probe_100": p100, "scratch_10": s10, "gain_pass": ok_gain,
            "gap_pass": ok_gap, "text": text}


def synthetic_section(b: Dict[str, Any], dims: int, work: Path, device: str) -> Dict[str, Any]:
    """One planted-cohort recipe table (all recipes, all seeds) with the declared recipe's verdict."""
    t0 = time.perf_counter()
    df = synthetic_runs(dims, b["rec_seeds"], b, work, device)
    v = verdict(df)
    rows = table_rows(df)
    note = (f"Planted cohort {dims}D, {b['rec_patients']} patients x 1 image, {b['rec_size'][dims]}^{dims}, seeds "
            f"{list(b['rec_seeds'])} (cohort, split and weights change with the seed); holdout test 30% of "
            f"patients; the demo config (configs/nih_cxr_demo.yaml) with only pretrain.losses changed per recipe"
            f"{'' if not b['rec_pre_epochs'] else ', pretrain.epochs=' + str(b['rec_pre_epochs'])}; "
            f"label fractions of the training patients. {v['text']}. "
            f"{time.perf_counter() - t0:.0f} s in all.")
    return {"title": f"Pretraining recipes, planted cohort {dims}D: fused linear probe vs fused from scratch",
            "columns": list(rows[0]), "rows": rows, "note": note, "verdict": v, "key": f"recipes {dims}d"}


def nih_section(b: Dict[str, Any], work: Path, device: str) -> Dict[str, Any]:
    """NIH (bundled cohort, holdout, one seed) with the demo configs at a short budget."""
    t0 = time.perf_counter()
    common = [f"device={device}", "evaluation.bootstrap=0", "evaluation.subgroups=[]"]
    pre = _epochs(b, "rec_nih_epochs", "pretrain") + ["pretrain.progress=false"]
    ft = ["finetune.heads=[linear]", f"finetune.label_fractions=[{','.join(f'{f:g}' for f in FRACTIONS)}]",
          "finetune.cv_folds=null"] + _epochs(b, "rec_ft_epochs", "finetune")
    df = run_cell(common, pre, ft, work / "rec_nih", [r for r in RECIPES if not r.startswith("mae")])
    df["seed"] = 0
    rows = table_rows(df)
    return {"title": "Pretraining recipes, NIH chest X-ray (abnormal): fused linear probe vs fused from scratch",
            "columns": list(rows[0]), "rows": rows,
            "note": f"One seed, holdout split and epochs of the demo config; the MAE "
                    f"recipe needs a ViT and is left out here. {verdict(df)['text']}. "
                    f"{time.perf_counter() - t0:.0f} s."}

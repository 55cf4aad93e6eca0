"""Everything LightGBM (Ke et al. 2017): fitting per label kind, prediction, text files, the
``lightgbm`` head (trees on the frozen fused embedding) and the ``tabular_lgbm`` baseline
(trees on the raw clinical columns and omics values).

Binary and multiclass use one booster (``binary`` / ``multiclass`` objective); multilabel
uses one binary booster per label, each on its labelled rows. Models are saved with
``Booster.save_model`` (text), never pickled.

``lightgbm`` head input per row: fused embedding ``[D]`` then, with
``finetune.lightgbm.with_raw_features``, the preprocessed clinical features
``[F_num + F_cat]`` (NaN where missing; categorical indices as LightGBM categorical features).
``tabular_lgbm``: numeric columns as they are in the table, categorical columns as pandas
``category`` with the training rows' categories (an unseen category becomes missing), then
the omics values ``[G]`` (standardised with the training mean/sd, which trees ignore; NaN
where missing) as columns ``omics_<j>``; no image, no pretrained encoder: the reference a
fused model has to beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_model

from clinfusion.config.schema import LightGBMConfig
from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.models import HeadContext, Predictor, register_model
from clinfusion.errors import ConfigError


def _params(cfg: LightGBMConfig, objective: str, seed: int, **extra) -> dict:
    return {
        "objective": objective, "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
        "min_child_samples": cfg.min_child_samples, "min_data_in_bin": 1, "verbose": -1, "seed": seed,
        "num_threads": cfg.num_threads, "deterministic": True, "force_col_wise": True, **extra,
    }


def fit_boosters(X, y: np.ndarray, kind: str, cfg: LightGBMConfig, seed: int = 0,
                 categorical: Optional[Sequence[int]] = None,
                 feature_names: Optional[List[str]] = None, num_classes: int = 2) -> List[lgb.Booster]:
    """Train on ``X [N, F]`` (numpy or DataFrame with category columns), ``y`` per kind.

    ``num_classes``: multiclass only, the number of classes K (all of them, seen or not).
    """
    cat = list(categorical) if categorical else "auto"
    names = feature_names or "auto"

    def one(Xs, ys, objective, **extra):
        ds = lgb.Dataset(Xs, label=ys, categorical_feature=cat, feature_name=names, free_raw_data=False,
                         params={"verbose": -1, "min_data_in_bin": 1})
        booster = lgb.train(_params(cfg, objective, seed, **extra), ds, num_boost_round=cfg.n_estimators)
        if booster.feature_importance().sum() == 0:  # every tree a single leaf: a constant prediction
            print(f"warning: LightGBM learned no split from {len(ys)} training rows (finetune.lightgbm."
                  f"min_child_samples={cfg.min_child_samples}): its predictions are constant; lower "
                  f"min_child_samples for a cohort this small", flush=True)
        return booster

    if kind == "binary":
        return [one(X, y.astype(float), "binary")]
    if kind == "multiclass":
        return [one(X, y.astype(int), "multiclass", num_class=num_classes)]
    out = []
    for j in range(y.shape[1]):
        sel = ~np.isnan(y[:, j])
        Xs = X.iloc[np.flatnonzero(sel)] if hasattr(X, "iloc") else X[sel]
        out.append(one(Xs, y[sel, j], "binary"))
    return out


def predict_boosters(boosters: List[lgb.Booster], X, kind: str, num_outputs: int) -> np.ndarray:
    """Probabilities ``[N, K_out]``."""
    if kind == "multilabel":
        return np.stack([b.predict(X) for b in boosters], axis=1).astype(float)
    p = np.asarray(boosters[0].predict(X), dtype=float)
    if kind == "binary":
        return p.reshape(-1, 1)
    return p.reshape(len(p), num_outputs)


def save_boosters(boosters: List[lgb.Booster], directory: Path, stem: str = "lightgbm") -> List[str]:
    names = [f"{stem}_{k}.txt" for k in range(len(boosters))]
    for b, n in zip(boosters, names):
        b.save_model(str(Path(directory) / n))
    return names


def load_boosters(directory: Path, names: List[str]) -> List[lgb.Booster]:
    return [lgb.Booster(model_file=str(Path(directory) / n)) for n in names]


ENCODER_WEIGHTS = "encoder.safetensors"


def lightgbm_features(data: FinetuneData, model: torch.nn.Module, rows: np.ndarray, with_raw: bool,
                      variant: str = "all") -> np.ndarray:
    """``[N, D (+ F_num + F_cat)]`` input matrix of the lightgbm head."""
    emb = data.embed(model, rows, variant).astype(np.float64)
    return np.concatenate([emb, data.raw_matrix(rows, variant)], axis=1) if with_raw else emb


def lightgbm_feature_names(embed_dim: int, raw_names: List[str], with_raw: bool) -> List[str]:
    names = [f"emb_{i}" for i in range(embed_dim)]
    return names + [f"raw_{c}" for c in raw_names] if with_raw else names


class LightGBMHead(Predictor):
    def __init__(self, model: torch.nn.Module, boosters: List[lgb.Booster], kind: str, num_outputs: int,
                 with_raw: bool, feature_names: List[str], n_categorical: int) -> None:
        self.name = "lightgbm"
        self.model, self.boosters, self.kind, self.num_outputs = model, boosters, kind, num_outputs
        self.with_raw, self.feature_names, self.n_categorical = with_raw, feature_names, n_categorical

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        X = lightgbm_features(data, self.model, rows, self.with_raw, variant)
        return predict_boosters(self.boosters, X, self.kind, self.num_outputs)

    def save(self, directory: Path) -> Dict[str, Any]:
        save_model(self.model, str(Path(directory) / ENCODER_WEIGHTS))
        files = save_boosters(self.boosters, Path(directory))
        return {"format": "lightgbm_head", "head": "lightgbm", "with_raw_features": self.with_raw,
                "boosters": files, "encoder_weights": ENCODER_WEIGHTS, "feature_names": self.feature_names,
                "n_categorical": self.n_categorical}


@register_model("lightgbm", "head")
def lightgbm(ctx: HeadContext) -> LightGBMHead:
    data, cfg = ctx.data, ctx.cfg.lightgbm
    model = ctx.encoder.eval()  # frozen and shared: embeddings cached per row set
    X = lightgbm_features(data, model, ctx.train_rows, cfg.with_raw_features)
    emb_dim = X.shape[1] - (len(data.raw_feature_names()) if cfg.with_raw_features else 0)
    n_cat = len(data.preprocessor.schema.categorical)
    cat_idx = list(range(X.shape[1] - n_cat, X.shape[1])) if cfg.with_raw_features and n_cat else None
    names = lightgbm_feature_names(emb_dim, data.raw_feature_names(), cfg.with_raw_features)
    boosters = fit_boosters(X, data.y[ctx.train_rows], ctx.info.kind, cfg, ctx.seed, cat_idx, names,
                            num_classes=ctx.info.num_outputs)
    return LightGBMHead(model, boosters, ctx.info.kind, ctx.info.num_outputs, cfg.with_raw_features, names,
                        n_cat if cfg.with_raw_features else 0)


def categorize(frame: pd.DataFrame, categories: Dict[str, List[str]]) -> pd.DataFrame:
    out = frame.copy()
    for col, cats in categories.items():
        out[col] = pd.Categorical(out[col].astype(object), categories=cats)
    return out


class TabularLGBM(Predictor):
    variants = False  # no modality mask: evaluated on all modalities only

    def __init__(self, boosters, categories: Dict[str, List[str]], kind: str, num_outputs: int) -> None:
        self.name = "tabular_lgbm"
        self.boosters, self.categories, self.kind, self.num_outputs = boosters, categories, kind, num_outputs

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        X = table_frame(data, rows, self.categories)
        return predict_boosters(self.boosters, X, self.kind, self.num_outputs)


def table_frame(data: FinetuneData, rows: np.ndarray, categories: Dict[str, List[str]],
                raw: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``tabular_lgbm`` input: the clinical columns (categorical ones as ``category``), then
    ``omics_<j>`` per omics column (NaN where missing). ``raw``: ``data.raw_frame(rows)`` when at hand."""
    frame = categorize(data.raw_frame(rows) if raw is None else raw, categories)
    omics = data.arrays["omics"][rows]
    if omics.shape[1] == 0:
        return frame
    values = np.where(data.arrays["omics_missing"][rows], np.nan, omics).astype(np.float64)
    genes = pd.DataFrame(values, columns=[f"omics_{j}" for j in range(values.shape[1])])
    return pd.concat([frame, genes], axis=1)


@register_model("tabular_lgbm", "baseline", reads=("table",))
def tabular_lgbm(ctx: HeadContext) -> TabularLGBM:
    data = ctx.data
    train = data.raw_frame(ctx.train_rows)
    categories = {c: sorted(train[c].dropna().unique().tolist()) for c in data.cohort.categorical}
    X = table_frame(data, ctx.train_rows, categories, raw=train)
    if X.shape[1] == 0:
        raise ConfigError("finetune.baselines: tabular_lgbm needs clinical feature or omics columns; the cohort "
                          "has none (remove tabular_lgbm from finetune.baselines)")
    boosters = fit_boosters(X, data.y[ctx.train_rows], ctx.info.kind, ctx.cfg.lightgbm, ctx.seed,
                            num_classes=ctx.info.num_outputs)
    return TabularLGBM(boosters, categories, ctx.info.kind, ctx.info.num_outputs)

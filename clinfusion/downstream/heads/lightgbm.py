"""``lightgbm`` head: gradient-boosted trees (Ke et al. 2017) on the frozen fused embedding.

Input matrix per row: fused embedding ``[D]`` then, with ``finetune.lightgbm.with_raw_features``,
the preprocessed clinical features ``[F_num + F_cat]`` (NaN where missing; categorical
indices as LightGBM categorical features).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import lightgbm as lgb
import numpy as np
import torch
from safetensors.torch import save_model

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.heads.base import HEADS, HeadContext, Predictor
from clinfusion.downstream.lgbm import fit_boosters, predict_boosters, save_boosters

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
    def __init__(self, model: torch.nn.Module, boosters: List[lgb.Booster], task: str, num_outputs: int,
                 with_raw: bool, feature_names: List[str], n_categorical: int) -> None:
        self.name = "lightgbm"
        self.model, self.boosters, self.task, self.num_outputs = model, boosters, task, num_outputs
        self.with_raw, self.feature_names, self.n_categorical = with_raw, feature_names, n_categorical

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        X = lightgbm_features(data, self.model, rows, self.with_raw, variant)
        return predict_boosters(self.boosters, X, self.task, self.num_outputs)

    def save(self, directory: Path) -> Dict[str, Any]:
        save_model(self.model, str(Path(directory) / ENCODER_WEIGHTS))
        files = save_boosters(self.boosters, Path(directory))
        return {"kind": "lightgbm_head", "head": "lightgbm", "with_raw_features": self.with_raw,
                "boosters": files, "encoder_weights": ENCODER_WEIGHTS, "feature_names": self.feature_names,
                "n_categorical": self.n_categorical}


@HEADS.register("lightgbm")
def lightgbm(ctx: HeadContext) -> LightGBMHead:
    data, cfg = ctx.data, ctx.cfg.lightgbm
    model = ctx.encoder.eval()  # frozen and shared: embeddings cached per row set
    X = lightgbm_features(data, model, ctx.train_rows, cfg.with_raw_features)
    emb_dim = X.shape[1] - (len(data.raw_feature_names()) if cfg.with_raw_features else 0)
    n_cat = len(data.preprocessor.schema.categorical)
    cat_idx = list(range(X.shape[1] - n_cat, X.shape[1])) if cfg.with_raw_features and n_cat else None
    names = lightgbm_feature_names(emb_dim, data.raw_feature_names(), cfg.with_raw_features)
    boosters = fit_boosters(X, data.y[ctx.train_rows], ctx.info.task, cfg, ctx.seed, cat_idx, names,
                            num_classes=ctx.info.num_outputs)
    return LightGBMHead(model, boosters, ctx.info.task, ctx.info.num_outputs, cfg.with_raw_features, names,
                        n_cat if cfg.with_raw_features else 0)

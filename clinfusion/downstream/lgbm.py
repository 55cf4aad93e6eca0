"""LightGBM (Ke et al. 2017) helpers: fit per task, predict probabilities, save as text.

Binary and multiclass use one booster (``binary`` / ``multiclass`` objective); multilabel
uses one binary booster per label, each on its labelled rows. Models are saved with
``Booster.save_model`` (text), never pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import lightgbm as lgb
import numpy as np

from clinfusion.config.schema import LightGBMConfig


def _params(cfg: LightGBMConfig, objective: str, seed: int, **extra) -> dict:
    return {
        "objective": objective, "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
        "min_child_samples": cfg.min_child_samples, "min_data_in_bin": 1, "verbose": -1, "seed": seed,
        "num_threads": cfg.num_threads, "deterministic": True, "force_col_wise": True, **extra,
    }


def fit_boosters(X, y: np.ndarray, task: str, cfg: LightGBMConfig, seed: int = 0,
                 categorical: Optional[Sequence[int]] = None,
                 feature_names: Optional[List[str]] = None, num_classes: int = 2) -> List[lgb.Booster]:
    """Train on ``X [N, F]`` (numpy or DataFrame with category columns), ``y`` per task.

    ``num_classes``: multiclass only, the number of classes K (all of them, seen or not).
    """
    cat = list(categorical) if categorical else "auto"
    names = feature_names or "auto"

    def one(Xs, ys, objective, **extra):
        ds = lgb.Dataset(Xs, label=ys, categorical_feature=cat, feature_name=names, free_raw_data=False,
                         params={"verbose": -1, "min_data_in_bin": 1})
        return lgb.train(_params(cfg, objective, seed, **extra), ds, num_boost_round=cfg.n_estimators)

    if task == "binary":
        return [one(X, y.astype(float), "binary")]
    if task == "multiclass":
        return [one(X, y.astype(int), "multiclass", num_class=num_classes)]
    out = []
    for j in range(y.shape[1]):
        sel = ~np.isnan(y[:, j])
        Xs = X.iloc[np.flatnonzero(sel)] if hasattr(X, "iloc") else X[sel]
        out.append(one(Xs, y[sel, j], "binary"))
    return out


def predict_boosters(boosters: List[lgb.Booster], X, task: str, num_outputs: int) -> np.ndarray:
    """Probabilities ``[N, K_out]``."""
    if task == "multilabel":
        return np.stack([b.predict(X) for b in boosters], axis=1).astype(float)
    p = np.asarray(boosters[0].predict(X), dtype=float)
    if task == "binary":
        return p.reshape(-1, 1)
    return p.reshape(len(p), num_outputs)


def save_boosters(boosters: List[lgb.Booster], directory: Path, stem: str = "lightgbm") -> List[str]:
    names = [f"{stem}_{k}.txt" for k in range(len(boosters))]
    for b, n in zip(boosters, names):
        b.save_model(str(Path(directory) / n))
    return names


def load_boosters(directory: Path, names: List[str]) -> List[lgb.Booster]:
    return [lgb.Booster(model_file=str(Path(directory) / n)) for n in names]

"""``tabular_lgbm`` baseline: LightGBM (Ke et al. 2017) on the raw clinical columns.

Numeric columns as they are in the table, categorical columns as pandas ``category``
with the training rows' categories (an unseen category becomes missing), missing as NaN.
No image, no pretrained encoder: the reference a fused model has to beat.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.heads.base import BASELINES, HeadContext, Predictor
from clinfusion.downstream.lgbm import fit_boosters, predict_boosters


def categorize(frame: pd.DataFrame, categories: Dict[str, List[str]]) -> pd.DataFrame:
    out = frame.copy()
    for col, cats in categories.items():
        out[col] = pd.Categorical(out[col].astype(object), categories=cats)
    return out


class TabularLGBM(Predictor):
    variants = False  # no modality mask: evaluated on all modalities only

    def __init__(self, boosters, categories: Dict[str, List[str]], task: str, num_outputs: int) -> None:
        self.name = "tabular_lgbm"
        self.boosters, self.categories, self.task, self.num_outputs = boosters, categories, task, num_outputs

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        X = categorize(data.raw_frame(rows), self.categories)
        return predict_boosters(self.boosters, X, self.task, self.num_outputs)


@BASELINES.register("tabular_lgbm")
def tabular_lgbm(ctx: HeadContext) -> TabularLGBM:
    data = ctx.data
    train = data.raw_frame(ctx.train_rows)
    if train.shape[1] == 0:
        from clinfusion.errors import ConfigError

        raise ConfigError("finetune.baselines: tabular_lgbm needs clinical feature columns; the cohort has none "
                          "(remove tabular_lgbm from finetune.baselines)")
    categories = {c: sorted(train[c].dropna().unique().tolist()) for c in data.cohort.categorical}
    X = categorize(train, categories)
    boosters = fit_boosters(X, data.y[ctx.train_rows], ctx.info.task, ctx.cfg.lightgbm, ctx.seed,
                            num_classes=ctx.info.num_outputs)
    return TabularLGBM(boosters, categories, ctx.info.task, ctx.info.num_outputs)

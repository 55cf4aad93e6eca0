"""One batch through every requested method: maps, tabular attributions, shares, faithfulness.

:class:`Explainer` holds the model handles and the ``explain`` config section; its
:meth:`Explainer.explain_batch` returns a :class:`BatchResult` and accumulates per-method
wall-clock time (``timings``). It takes no file paths and writes nothing (see
:mod:`clinfusion.explain.run`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from clinfusion.config.schema import ExplainConfig
from clinfusion.explain.common import Explainable, choose_targets
from clinfusion.explain.faithfulness import deletion_insertion, randomization_check, rank_agreement
from clinfusion.explain.image import IMAGE_METHODS
from clinfusion.explain.modality import ProbFn, modality_share, neural_probs
from clinfusion.explain.tabular import (TABULAR_METHODS, TabularAttribution, ablate, score_forward,
                                        treeshap_attributions)

TREESHAP = "treeshap"  # LightGBM's own TreeSHAP: used for a lightgbm head, not selectable
ABLATION = "feature_ablation"


@dataclass
class BatchResult:
    ids: List[str]
    probs: np.ndarray  # [B, K] probabilities of the explained model
    targets: np.ndarray  # [B] output explained
    maps: Dict[str, Tensor] = field(default_factory=dict)  # method -> [B, *S] (CPU)
    tabular: Dict[str, TabularAttribution] = field(default_factory=dict)
    share: Optional[pd.DataFrame] = None
    faith: Dict[str, np.ndarray] = field(default_factory=dict)  # "<method>/<measure>" -> [B]
    randomization: Dict[str, Dict[str, float]] = field(default_factory=dict)


@dataclass
class LightGBMView:
    """A LightGBM head: ``features(batch) -> X [B, F]``, one booster per output group.

    ``table``: the encoder's table handles (token names, omics groups; its ``model`` is never
    called), for ``feature_ablation`` through the whole pipeline; None without a table encoder.
    """

    boosters: List[Any]
    features: Callable[[Dict[str, Any]], np.ndarray]
    feature_names: List[str]
    clinical: List[str]
    predict_proba: ProbFn
    num_outputs: int
    kind: str = "binary"
    table: Optional[Explainable] = None


class Explainer:
    """Runs the methods of one explain invocation.

    Args:
        ex: the neural classifier's handles, or None (a LightGBM head and no saved neural head that
            reads the image: no image maps).
        cfg: the ``explain`` section.
        image_methods, tabular_methods: registry names to run.
        lgbm: the LightGBM head when it is the explained model: TreeSHAP for the clinical
            columns, and ``feature_ablation`` (when requested) through encoder and trees, which
            also reaches the omics groups; it is then the primary tabular method when the
            table has omics (TreeSHAP sees the genes only inside the fused embedding).
    """

    def __init__(self, ex: Optional[Explainable], cfg: ExplainConfig, image_methods: Sequence[str],
                 tabular_methods: Sequence[str], lgbm: Optional[LightGBMView] = None) -> None:
        self.ex, self.cfg, self.lgbm = ex, cfg, lgbm
        self.image_methods = list(image_methods) if ex is not None else []
        self.tabular_methods = list(tabular_methods) if ex is not None else []
        self.lgbm_ablation = (lgbm is not None and lgbm.table is not None and bool(lgbm.table.token_names)
                              and ABLATION in tabular_methods)
        if self.lgbm_ablation:  # ablation explains the LightGBM head itself, not the neural one
            self.tabular_methods = [m for m in self.tabular_methods if m != ABLATION]
        self.timings: Dict[str, float] = {}
        self.samples = 0
        self._randomized = False

    @property
    def primary_tabular(self) -> Optional[str]:
        if self.lgbm is not None:
            return ABLATION if self.lgbm_ablation and self.lgbm.table.omics_groups else TREESHAP
        return self.tabular_methods[0] if self.tabular_methods else None

    @property
    def primary_image(self) -> Optional[str]:
        return self.image_methods[0] if self.image_methods else None

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return out

    def prob_fn(self) -> ProbFn:
        return self.lgbm.predict_proba if self.lgbm is not None else neural_probs(self.ex)

    def explain_batch(self, batch: Dict[str, Any]) -> BatchResult:
        probs = np.asarray(self.prob_fn()(batch), dtype=np.float64)
        targets = choose_targets(torch.as_tensor(probs), "binary" if probs.shape[1] == 1 else "multiclass")
        res = BatchResult(ids=[str(i) for i in batch["id"]], probs=probs, targets=targets.numpy())
        self.samples += len(res.ids)
        t_dev = targets.to(batch["image"].device)
        for m in self.image_methods:
            method = IMAGE_METHODS.get(m)
            res.maps[m] = self._timed(m, lambda f=method: f(self.ex, batch, t_dev, self.cfg).float().cpu())
        for m in self.tabular_methods:
            res.tabular[m] = self._timed(m, lambda m=m: TABULAR_METHODS.get(m)(self.ex, batch, t_dev, self.cfg))
        if self.lgbm is not None:
            res.tabular[TREESHAP] = self._timed(TREESHAP, lambda: self._treeshap(batch, res.targets))
        if self.lgbm_ablation:
            lg = self.lgbm
            forward = score_forward(lg.predict_proba, lg.kind, batch["num"].device)
            res.tabular[ABLATION] = self._timed(ABLATION, lambda: ablate(lg.table, batch, t_dev, forward))
        self._shares(batch, t_dev, res)
        self._faithfulness(batch, t_dev, res)
        return res

    def _treeshap(self, batch: Dict[str, Any], targets: np.ndarray) -> TabularAttribution:
        lg = self.lgbm
        X = lg.features(batch)
        raw_missing = np.concatenate([batch["num_missing"].bool().cpu().numpy(),
                                      batch["cat_missing"].bool().cpu().numpy()], axis=1)
        if len(lg.boosters) == 1:
            return treeshap_attributions(lg.boosters[0], X, lg.feature_names, lg.clinical, raw_missing, targets,
                                         lg.num_outputs)
        per = [treeshap_attributions(b, X, lg.feature_names, lg.clinical, raw_missing, targets, 1)
               for b in lg.boosters]  # multilabel: one booster per label, pick each sample's target
        rows = np.arange(len(targets))
        first = per[0]
        values = np.stack([p.values for p in per])[targets, rows]
        return TabularAttribution(values=values, missing=first.missing, names=first.names)

    def _shares(self, batch: Dict[str, Any], targets: Tensor, res: BatchResult) -> None:
        img = res.maps.get("integrated_gradients")
        tab = res.tabular.get("tabular_ig")
        res.share = modality_share(self.prob_fn(), batch, targets, img, tab.values if tab is not None else None)

    def _faithfulness(self, batch: Dict[str, Any], targets: Tensor, res: BatchResult) -> None:
        has_img = batch["modality_mask"][:, 0].bool().cpu().numpy()
        for m, maps in res.maps.items():
            aucs = deletion_insertion(self.ex, batch, targets, maps.to(batch["image"].device),
                                      self.cfg.faithfulness_steps, seed=0, baseline=self.cfg.image_baseline)
            for k, v in aucs.items():
                res.faith[f"{m}/{k}"] = np.where(has_img, v, np.nan)
        if "tabular_ig" in res.tabular and ABLATION in res.tabular and not self.lgbm_ablation:
            res.faith["table/ig_vs_ablation_spearman"] = rank_agreement(
                res.tabular["tabular_ig"].values, res.tabular["feature_ablation"].values)
        if res.maps and not self._randomized:  # Adebayo et al. 2018, once (first batch)
            self._randomized = True

            def compute(ex_rnd: Explainable, method: str) -> Tensor:
                return IMAGE_METHODS.get(method)(ex_rnd, batch, targets, self.cfg).float().cpu()

            res.randomization = randomization_check(self.ex, batch, targets, res.maps, compute)

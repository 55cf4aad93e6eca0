"""Clinical and genomic attributions: one value per clinical column / omics group (and gene).

Registered in :data:`TABULAR_METHODS` as ``fn(ex, batch, targets [B], cfg) -> TabularAttribution``:

* ``tabular_ig``: layer Integrated Gradients (Sundararajan et al. 2017) on the table token
  embeddings ``[B, T, H]`` from the all-missing table's tokens, summed over ``H``: one value
  per token = per clinical column / omics group. Per gene: IG w.r.t. the scaled omics
  values ``[B, G]`` from 0 (the training mean).
* ``feature_ablation``: captum ``FeatureAblation``, one group per clinical column (and per
  omics group), each ablated to the *missing* state (value 0, missing flag set). For a
  LightGBM head it runs through the whole pipeline (encoder, then trees) via
  :func:`score_forward`: the only attribution of such a head that reaches the omics groups.

:func:`treeshap_attributions` maps LightGBM's own TreeSHAP (Lundberg et al. 2020,
``pred_contrib=True``) onto the same columns for a LightGBM head.

A value missing in the input is reported as ``NaN`` with ``missing=True``, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from captum.attr import FeatureAblation, IntegratedGradients, LayerIntegratedGradients
from torch import Tensor

from clinfusion.config.schema import ExplainConfig
from clinfusion.datasets.transforms import missing_table
from clinfusion.errors import ConfigError
from clinfusion.explain.common import FORWARD_KEYS, Explainable, forward_args
from clinfusion.registry import Registry

TABULAR_METHODS = Registry("tabular attribution method")


@dataclass
class TabularAttribution:
    """Per-sample attributions over named features.

    ``values [B, F]`` float (NaN where the input value was missing), ``missing [B, F]`` bool,
    ``names`` the F feature names (clinical columns, then omics groups); ``genes [B, G]``
    per-gene values (NaN where missing) or None, ``gene_names`` the G omics columns.
    """

    values: np.ndarray
    missing: np.ndarray
    names: List[str]
    genes: Optional[np.ndarray] = None
    gene_names: Optional[List[str]] = None


def token_missing(ex: Explainable, batch: Dict[str, Any]) -> np.ndarray:
    """``[B, T]`` bool: the token's input is missing (omics group: every gene missing)."""
    parts = [batch["num_missing"].bool().cpu().numpy(), batch["cat_missing"].bool().cpu().numpy()]
    if ex.omics_groups:
        om = batch["omics_missing"].bool().cpu().numpy()
        parts.append(np.stack([om[:, g].all(axis=1) if len(g) else np.ones(len(om), bool)
                               for g in ex.omics_groups], axis=1))
    return np.concatenate(parts, axis=1)


def _finish(ex: Explainable, batch: Dict[str, Any], values: np.ndarray, genes: Optional[np.ndarray] = None
            ) -> TabularAttribution:
    miss = token_missing(ex, batch)
    values = np.where(miss, np.nan, values.astype(np.float64))
    gene_names = None
    if genes is not None:
        genes = np.where(batch["omics_missing"].bool().cpu().numpy(), np.nan, genes.astype(np.float64))
        gene_names = list(ex.omics_columns)
    return TabularAttribution(values=values, missing=miss, names=ex.token_names, genes=genes, gene_names=gene_names)


def _require_tokens(ex: Explainable, method: str) -> None:
    if ex.token_layer is None:
        raise ConfigError(f"explain method {method!r} needs a model with a tabular encoder: "
                          "remove it from explain.methods")


@TABULAR_METHODS.register("tabular_ig")
def tabular_ig(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig) -> TabularAttribution:
    """Layer IG on the token embeddings ``[B, T, H]`` -> ``[B, T]``; per gene IG ``[B, G]``."""
    _require_tokens(ex, "tabular_ig")
    args = forward_args(batch)
    base = missing_table(batch)
    # inputs = the six tabular tensors; the token layer's output is interpolated between the
    # tokens of the all-missing table and the sample's tokens (image and mask stay as given)
    from clinfusion.datasets.batch import TABLE_KEYS

    inputs = tuple(batch[k] for k in TABLE_KEYS)
    baselines = tuple(base[k] for k in TABLE_KEYS)

    def fwd(num, num_missing, cat, cat_missing, omics, omics_missing, image, mask):
        return ex.model(image, num, num_missing, cat, cat_missing, omics, omics_missing, mask)

    lig = LayerIntegratedGradients(fwd, ex.token_layer)
    attr = lig.attribute(inputs, baselines=baselines, target=targets, additional_forward_args=(args[0], args[7]),
                         n_steps=cfg.ig_steps, internal_batch_size=max(cfg.batch_size, 1) * 4)
    attr = attr[0] if isinstance(attr, (tuple, list)) else attr
    per_token = attr.detach().float().sum(dim=-1)[:, ex.token_offset:].cpu().numpy()
    n_tok = len(ex.token_names)
    if per_token.shape[1] < n_tok:
        raise RuntimeError(f"token layer gives {per_token.shape[1]} tokens, expected {n_tok}")
    genes = gene_ig(ex, batch, targets, cfg) if ex.omics_columns else None
    return _finish(ex, batch, per_token[:, :n_tok], genes)


def gene_ig(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig) -> np.ndarray:
    """IG w.r.t. the scaled omics values from 0: ``[B, G]``."""
    args = forward_args(batch)
    x = batch["omics"].detach().float().clone().requires_grad_(True)

    def fwd(omics, image, num, num_missing, cat, cat_missing, omics_missing, mask):
        return ex.model(image, num, num_missing, cat, cat_missing, omics, omics_missing, mask)

    rest = (args[0], args[1], args[2], args[3], args[4], args[6], args[7])
    attr = IntegratedGradients(fwd).attribute(x, baselines=torch.zeros_like(x), target=targets,
                                              additional_forward_args=rest, n_steps=cfg.ig_steps,
                                              internal_batch_size=max(cfg.batch_size, 1) * 4)
    return attr.detach().float().cpu().numpy()


def ablation_groups(ex: Explainable, batch: Dict[str, Any]) -> tuple:
    """Feature masks (one group id per clinical column / omics group) for the six table tensors."""
    b = batch["num"].shape[0]
    dev = batch["num"].device
    f_num, f_cat, g = batch["num"].shape[1], batch["cat"].shape[1], batch["omics"].shape[1]
    num_ids = torch.arange(f_num, device=dev)[None].expand(b, -1)
    cat_ids = (f_num + torch.arange(f_cat, device=dev))[None].expand(b, -1)
    gene_group = torch.full((g,), f_num + f_cat + len(ex.omics_groups), dtype=torch.long, device=dev)  # unused genes
    for j, genes in enumerate(ex.omics_groups):
        gene_group[list(genes)] = f_num + f_cat + j
    om_ids = gene_group[None].expand(b, -1)
    return (num_ids, num_ids, cat_ids, cat_ids, om_ids, om_ids)


@TABULAR_METHODS.register("feature_ablation")
def feature_ablation(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig
                     ) -> TabularAttribution:
    """Target-logit drop when one column (group) is set missing: ``[B, T]``."""
    return ablate(ex, batch, targets, ex.model)


def ablate(ex: Explainable, batch: Dict[str, Any], targets: Tensor, forward: Callable[..., Tensor]
           ) -> TabularAttribution:
    """captum ``FeatureAblation`` of ``forward(*FORWARD_KEYS) -> [B, K]`` (missing flags as bool),
    one group per clinical column / omics group of ``ex``, each set to the missing state: ``[B, T]``."""
    args = forward_args(batch)
    # missing flags travel as float so captum can blend them; the forward turns them back to bool
    inputs = (batch["num"].float(), batch["num_missing"].float(), batch["cat"].long(),
              batch["cat_missing"].float(), batch["omics"].float(), batch["omics_missing"].float())
    baselines = (0.0, 1.0, 0, 1.0, 0.0, 1.0)

    def fwd(num, num_missing, cat, cat_missing, omics, omics_missing, image, mask):
        return forward(image, num, num_missing > 0.5, cat, cat_missing > 0.5, omics, omics_missing > 0.5, mask)

    attr = FeatureAblation(fwd).attribute(inputs, baselines=baselines, target=targets,
                                          additional_forward_args=(args[0], args[7]),
                                          feature_mask=ablation_groups(ex, batch), perturbations_per_eval=4)
    f_num, f_cat = inputs[0].shape[1], inputs[2].shape[1]
    cols = [attr[0][:, j] for j in range(f_num)] + [attr[2][:, j] for j in range(f_cat)]
    for genes in ex.omics_groups:
        cols.append(attr[4][:, genes[0]] if len(genes) else torch.zeros_like(attr[0][:, 0]))
    values = torch.stack(cols, dim=1).detach().float().cpu().numpy() if cols else np.zeros((len(targets), 0))
    return _finish(ex, batch, values)


def score_forward(prob_fn: Callable[[Dict[str, Any]], np.ndarray], kind: str, device: torch.device
                  ) -> Callable[..., Tensor]:
    """``forward(*FORWARD_KEYS) -> [B, K]`` scores of a model seen only through its probabilities
    (``prob_fn(batch) -> [B, K]``, e.g. a LightGBM head on the fused embedding): log-odds for
    binary / multilabel, log-probability for multiclass, so ablation drops are on the logit scale
    of the neural heads."""
    def forward(*tensors: Tensor) -> Tensor:
        p = np.clip(np.asarray(prob_fn(dict(zip(FORWARD_KEYS, tensors))), dtype=np.float64), 1e-7, 1 - 1e-7)
        score = np.log(p) if kind == "multiclass" else np.log(p) - np.log1p(-p)
        return torch.as_tensor(score, dtype=torch.float32, device=device)

    return forward


def treeshap_attributions(booster: Any, X: np.ndarray, feature_names: Sequence[str], clinical: Sequence[str],
                          raw_missing: np.ndarray, targets: np.ndarray, num_outputs: int) -> TabularAttribution:
    """LightGBM TreeSHAP contributions mapped to clinical columns.

    Args:
        booster: the trained ``lightgbm.Booster``.
        X: ``[B, F]`` its input matrix; ``feature_names`` the F names (``emb_<i>`` for the
            fused embedding, ``raw_<col>`` for clinical columns).
        clinical: clinical column names reported; ``raw_missing [B, len(clinical)]`` bool.
        targets: ``[B]`` class explained (multiclass), ``num_outputs`` classes K (1 = binary).

    Returns:
        Features ``clinical`` (from ``raw_<col>``) plus ``fused_embedding`` (sum over the
        embedding dimensions, which carry image and table jointly).
    """
    contrib = np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)
    f = X.shape[1]
    if num_outputs > 1 and contrib.shape[1] == (f + 1) * num_outputs:
        contrib = contrib.reshape(len(X), num_outputs, f + 1)[np.arange(len(X)), targets]
    contrib = contrib[:, :f]
    index = {n: i for i, n in enumerate(feature_names)}
    emb = [i for i, n in enumerate(feature_names) if n.startswith("emb_")]
    cols, names = [], []
    for c in clinical:
        if f"raw_{c}" in index:
            cols.append(contrib[:, index[f"raw_{c}"]])
            names.append(c)
    keep = [clinical.index(n) for n in names]
    miss = raw_missing[:, keep] if keep else np.zeros((len(X), 0), bool)
    if emb:
        cols.append(contrib[:, emb].sum(axis=1))
        names.append("fused_embedding")
        miss = np.concatenate([miss, np.zeros((len(X), 1), bool)], axis=1)
    values = np.stack(cols, axis=1) if cols else np.zeros((len(X), 0))
    return TabularAttribution(values=np.where(miss, np.nan, values), missing=miss, names=names)


def explain_table(ex: Explainable, batch: Dict[str, Any], targets: Tensor, methods: Sequence[str],
                  cfg: ExplainConfig) -> Dict[str, TabularAttribution]:
    """``{method: TabularAttribution}`` for each tabular method."""
    return {m: TABULAR_METHODS.get(m)(ex, batch, targets, cfg) for m in methods}

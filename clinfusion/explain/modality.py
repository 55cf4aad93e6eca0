"""How much each modality drives a prediction, per sample, two ways.

* **attribution mass**: ``image_share = sum|A_img| / (sum|A_img| + sum|A_tab|)`` with the
  Integrated Gradients maps of both modalities (both obey completeness w.r.t. their own
  baseline, so their masses are in the same logit units);
* **ablation**: the change in the target probability when a modality is removed through
  the modality mask (image zeroed / every table value marked missing), normalised the same
  way: ``image_share = |dp_img| / (|dp_img| + |dp_tab|)``.

A sample without an image (or table) has share 0 for it by definition of the mask.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from clinfusion.datasets.batch import IMAGE, TABLE
from clinfusion.datasets.transforms import remove_modality
from clinfusion.explain.common import Explainable, forward_args, probabilities

ProbFn = Callable[[Dict[str, Any]], np.ndarray]

SHARE_COLUMNS = ["id", "prob", "image_share_attribution", "table_share_attribution", "delta_prob_no_image",
                 "delta_prob_no_table", "image_share_ablation", "table_share_ablation"]


def _share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    tot = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, a / np.where(tot > 0, tot, 1.0), np.nan)


def ablation_deltas(prob_fn: ProbFn, batch: Dict[str, Any], targets: Tensor) -> Dict[str, np.ndarray]:
    """``prob [B]`` and the target-probability drop without image / without table ``[B]``.

    ``prob_fn(batch) -> [B, K]`` probabilities (a neural classifier or a LightGBM head).
    """
    t = targets.cpu().numpy()

    def p_of(b: Dict[str, Any]) -> np.ndarray:
        return np.asarray(prob_fn(b), dtype=np.float64)[np.arange(len(t)), t]

    p = p_of(batch)
    return {"prob": p, "no_image": p - p_of(remove_modality(batch, "no_image")),
            "no_table": p - p_of(remove_modality(batch, "no_table"))}


def neural_probs(ex: Explainable) -> ProbFn:
    """``batch -> [B, K]`` probabilities of an :class:`Explainable`'s model."""
    def fn(batch: Dict[str, Any]) -> np.ndarray:
        with torch.no_grad():
            return probabilities(ex.model(*forward_args(batch)), ex.task).cpu().numpy()

    return fn


def modality_share(prob_fn: ProbFn, batch: Dict[str, Any], targets: Tensor, image_map: Optional[Tensor],
                   table_attr: Optional[np.ndarray]) -> pd.DataFrame:
    """One row per sample (columns :data:`SHARE_COLUMNS`).

    Args:
        prob_fn: ``batch -> [B, K]`` probabilities (:func:`neural_probs` or a LightGBM head).
        image_map: IG maps ``[B, *S]`` or None; table_attr: IG token attributions ``[B, T]``
            (NaN for missing values) or None. Attribution shares are NaN without both.
    """
    d = ablation_deltas(prob_fn, batch, targets)
    b = len(d["prob"])
    has = batch["modality_mask"].bool().cpu().numpy()
    if image_map is not None and table_attr is not None:
        a_img = image_map.abs().flatten(1).sum(1).double().numpy() * has[:, IMAGE]
        a_tab = np.nansum(np.abs(table_attr), axis=1) * has[:, TABLE]
        s_img = _share(a_img, a_tab)
    else:
        s_img = np.full(b, np.nan)
    ab_img = _share(np.abs(d["no_image"]), np.abs(d["no_table"]))
    return pd.DataFrame({
        "id": [str(i) for i in batch["id"]], "prob": d["prob"],
        "image_share_attribution": s_img, "table_share_attribution": 1.0 - s_img,
        "delta_prob_no_image": d["no_image"], "delta_prob_no_table": d["no_table"],
        "image_share_ablation": ab_img, "table_share_ablation": 1.0 - ab_img,
    })


def share_summary(frame: pd.DataFrame) -> Dict[str, Dict[str, float]]:
    """Cohort summary: mean / median / IQR of each share column (NaN rows skipped)."""
    out: Dict[str, Dict[str, float]] = {}
    for col in ("image_share_attribution", "image_share_ablation", "delta_prob_no_image", "delta_prob_no_table"):
        v = frame[col].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        out[col] = ({"mean": float(v.mean()), "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                     "q75": float(np.quantile(v, 0.75)), "n": int(len(v))} if len(v) else {"n": 0})
    return out

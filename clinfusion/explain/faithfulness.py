"""Do the explanations reflect the model? Three checks, written to ``faithfulness.json``.

* **Deletion / insertion** (Petsiuk et al. 2018, "RISE"): remove (set to 0) the pixels in
  decreasing attribution order in ``steps`` equal steps and record the target probability;
  insertion starts from the zero image and adds pixels back. The area under each curve
  (x = fraction of pixels, trapezoid rule) is compared with the same curves in a random
  pixel order (fixed seed): a faithful map has *lower* deletion and *higher* insertion AUC.
* **Feature-ablation agreement**: per sample Spearman correlation between the
  ``tabular_ig`` and ``feature_ablation`` values over the features present.
* **Model randomisation** (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): the
  maps of a copy of the model with re-initialised weights must differ from the trained
  model's: Spearman correlation of ``|map|`` per sample (low = the check passes).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from clinfusion.explain.common import Explainable, forward_args, target_probability

RANDOMISATION_MAX_RHO = 0.5  # maps "changed" when the mean rank correlation stays below this


def _orders(maps: Tensor, seed: Optional[int]) -> Tensor:
    """``[B, N]`` pixel indices, most important first (or a seeded random permutation)."""
    flat = maps.flatten(1)
    if seed is None:
        return torch.argsort(flat, dim=1, descending=True, stable=True)
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(flat.shape[1], generator=gen) for _ in range(flat.shape[0])])


def perturbation_curves(ex: Explainable, batch: Dict[str, Any], targets: Tensor, maps: Tensor, steps: int,
                        seed: Optional[int] = None, baseline: str = "zero") -> Dict[str, np.ndarray]:
    """Deletion and insertion curves ``[B, steps + 1]`` (target probability per step).

    ``maps [B, *S]`` rank the pixels (all channels of a pixel go together); ``seed`` set =
    random order instead. Deleted pixels take the ``baseline`` reference's values
    (:func:`clinfusion.explain.image.image_reference`: ``zero``, ``mean`` or ``blur``).
    """
    from clinfusion.explain.image import image_reference

    img = batch["image"].float()
    ref = image_reference(img, baseline)
    b, c = img.shape[:2]
    n = int(np.prod(img.shape[2:]))
    order = _orders(maps.cpu(), seed).to(img.device)
    rest = forward_args(batch)[1:]
    dele, ins = [], []
    for k in range(steps + 1):
        m = round(n * k / steps)
        keep = torch.ones(b, n, device=img.device)
        if m:
            keep.scatter_(1, order[:, :m], 0.0)
        keep = keep.view(b, 1, *img.shape[2:])
        dele.append(target_probability(ex, (img * keep + ref * (1 - keep),) + rest, targets))
        ins.append(target_probability(ex, (img * (1 - keep) + ref * keep,) + rest, targets))
    return {"deletion": torch.stack(dele, 1).cpu().numpy(), "insertion": torch.stack(ins, 1).cpu().numpy()}


def curve_auc(curves: np.ndarray) -> np.ndarray:
    """Trapezoid AUC over x in [0, 1] of each row of ``[B, steps + 1]``."""
    x = np.linspace(0.0, 1.0, curves.shape[1])
    return np.trapezoid(curves, x, axis=1)


def deletion_insertion(ex: Explainable, batch: Dict[str, Any], targets: Tensor, maps: Tensor, steps: int,
                       seed: int = 0, baseline: str = "zero") -> Dict[str, np.ndarray]:
    """Per-sample AUCs ``[B]``: ``deletion``, ``insertion``, ``deletion_random``, ``insertion_random``."""
    ranked = perturbation_curves(ex, batch, targets, maps, steps, baseline=baseline)
    rand = perturbation_curves(ex, batch, targets, maps, steps, seed=seed, baseline=baseline)
    return {"deletion": curve_auc(ranked["deletion"]), "insertion": curve_auc(ranked["insertion"]),
            "deletion_random": curve_auc(rand["deletion"]), "insertion_random": curve_auc(rand["insertion"])}


def rank_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho per row of two ``[B, F]`` attribution arrays over their non-NaN entries."""
    out = []
    for x, y in zip(a, b):
        ok = ~(np.isnan(x) | np.isnan(y))
        if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
            out.append(np.nan)
        else:
            out.append(float(spearmanr(x[ok], y[ok]).statistic))
    return np.asarray(out, dtype=float)


def randomized_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A deep copy with every weight re-initialised; the global RNG state is left untouched.

    Layers with ``reset_parameters`` use it; parameters owned directly by other modules
    (e.g. learned embeddings stored as ``nn.Parameter``) are re-drawn from N(0, std of the
    original).
    """
    clone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for mod in clone.modules():
            if hasattr(mod, "reset_parameters") and callable(mod.reset_parameters):
                mod.reset_parameters()
                continue
            for _, p in mod.named_parameters(recurse=False):
                std = float(p.float().std()) if p.numel() > 1 else 1.0
                p.copy_(torch.randn(p.shape, generator=gen).to(p) * (std or 1.0))
    return clone.eval()


def map_similarity(a: Tensor, b: Tensor) -> np.ndarray:
    """Spearman rho of ``|a|`` vs ``|b|`` per sample (``[B, *S]`` each) -> ``[B]``."""
    return rank_agreement(a.abs().flatten(1).double().numpy(), b.abs().flatten(1).double().numpy())


def randomization_check(ex: Explainable, batch: Dict[str, Any], targets: Tensor, maps: Dict[str, Tensor],
                        compute: Callable[[Explainable, str], Tensor], seed: int = 0) -> Dict[str, Dict[str, float]]:
    """Per image method: mean Spearman rho between trained and randomised-model maps.

    ``compute(ex_random, method) -> [B, *S]`` recomputes a method's maps with another model.
    """
    rnd = randomized_copy(ex.model, seed)
    ex_rnd = copy.copy(ex)
    ex_rnd.model = rnd
    ex_rnd.image_encoder = _matching(ex.model, rnd, ex.image_encoder)
    ex_rnd.token_layer = _matching(ex.model, rnd, ex.token_layer)
    out = {}
    for method, m in maps.items():
        rho = map_similarity(m, compute(ex_rnd, method))
        mean = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
        out[method] = {"spearman_mean": mean, "changed": bool(not np.isfinite(mean) or mean < RANDOMISATION_MAX_RHO)}
    return out


def _matching(orig: torch.nn.Module, clone: torch.nn.Module, sub: Optional[torch.nn.Module]):
    """The module of ``clone`` at the path ``sub`` has in ``orig``."""
    if sub is None:
        return None
    for name, mod in orig.named_modules():
        if mod is sub:
            return clone.get_submodule(name)
    return None


def summarise(values: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """Mean over samples of each concatenated per-sample array (NaN skipped)."""
    out = {}
    for k, arrs in values.items():
        v = np.concatenate(arrs) if arrs else np.zeros(0)
        out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return out

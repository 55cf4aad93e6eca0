"""(d) Attribution throughput (samples/s) per explanation method, interleaved.

A :class:`~clinfusion.models.FusedClassifier` (linear head) on the pretraining model is
wrapped with :func:`clinfusion.explain.adapter.explainable_from_classifier` and every
registered method is called through its public registry (``IMAGE_METHODS`` /
``TABULAR_METHODS``) on the same batch of ``explain.batch_size`` samples from the real
dataset, the methods taking turns each round. TreeSHAP (``treeshap_attributions``) runs
on a LightGBM booster fitted as the toolkit's ``lightgbm`` head is (fused embedding + raw
clinical columns, ``finetune.lightgbm`` settings). Throughput does not depend on what
the weights learned, so the classifier is not trained.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch

from benchmarks._pretrain_setup import move
from benchmarks._timing import interleave, median


def _treeshap(classifier: Any, ex: Any, batch: Dict[str, Any], train_batches: List[Dict[str, Any]], cfg: Any,
              device: torch.device) -> Callable[[], Any]:
    """A TreeSHAP closure over a booster trained on embeddings + raw clinical columns."""
    from clinfusion.downstream.lgbm import fit_boosters
    from clinfusion.explain.tabular import treeshap_attributions

    def features(b: Dict[str, Any]) -> np.ndarray:
        emb = classifier.embed(move(b, device)).float().cpu().numpy()
        raw = torch.cat([b["num"].float(), b["cat"].float()], dim=1).numpy()
        raw_miss = torch.cat([b["num_missing"], b["cat_missing"]], dim=1).numpy()
        return np.concatenate([emb, np.where(raw_miss, np.nan, raw)], axis=1)

    X = np.concatenate([features(b) for b in train_batches])
    y = np.concatenate([b["label"][:, 0].numpy() for b in train_batches])
    if len(np.unique(y)) < 2:  # a smoke-size sample may hold one class: speed is what is measured
        y = (np.arange(len(y)) % 2).astype(float)
    clinical = ex.clinical_columns
    names = [f"emb_{i}" for i in range(X.shape[1] - len(clinical))] + [f"raw_{c}" for c in clinical]
    booster = fit_boosters(X, y, "binary", cfg.finetune.lightgbm, feature_names=names)[0]
    Xb = features(batch)
    miss = torch.cat([batch["num_missing"], batch["cat_missing"]], dim=1).numpy()
    targets = np.zeros(len(Xb), dtype=int)
    return lambda: treeshap_attributions(booster, Xb, names, clinical, miss, targets, 1)


def measure(task: Any, train_ds: Any, cfg: Any, device: torch.device, rounds: int,
            methods: List[str] | None = None) -> Dict[str, Any]:
    """``{method: samples/s}`` over ``rounds`` interleaved rounds on one batch."""
    from clinfusion.explain.adapter import explainable_from_classifier
    from clinfusion.explain.image import IMAGE_METHODS
    from clinfusion.explain.tabular import TABULAR_METHODS
    from clinfusion.models import FusedClassifier

    ecfg = cfg.explain
    clf = FusedClassifier(task.model, 1, "linear").to(device).eval()
    ex = explainable_from_classifier(clf, "binary")
    loader = torch.utils.data.DataLoader(train_ds, batch_size=ecfg.batch_size, shuffle=False)
    it = iter(loader)
    batch = next(it)
    train_batches = [batch] + [b for _, b in zip(range(7), it)]
    b_dev = move(batch, device)
    targets = torch.zeros(len(batch["id"]), dtype=torch.long, device=device)
    wanted = methods or ["integrated_gradients", "occlusion", "gradcam", "tabular_ig", "feature_ablation", "treeshap"]
    fns: Dict[str, Callable[[], Any]] = {}
    for m in wanted:
        if m in IMAGE_METHODS.names():
            fns[m] = (lambda m=m: IMAGE_METHODS.get(m)(ex, b_dev, targets, ecfg))
        elif m in TABULAR_METHODS.names():
            fns[m] = (lambda m=m: TABULAR_METHODS.get(m)(ex, b_dev, targets, ecfg))
        elif m == "treeshap":
            fns[m] = _treeshap(clf, ex, batch, train_batches, cfg, device)
    missing = [m for m in wanted if m not in fns]
    times = interleave(fns, rounds=rounds, warmup=1, device=device)
    n = len(batch["id"])
    return {"batch": n, "rounds": rounds, "missing": missing,
            "samples_s": {m: n / median(ts) for m, ts in times.items()},
            "ms_per_batch": {m: 1000 * median(ts) for m, ts in times.items()},
            "settings": {"ig_steps": ecfg.ig_steps, "occlusion_window": ecfg.occlusion_window or "1/8 of image",
                         "lightgbm_trees": cfg.finetune.lightgbm.n_estimators}}

"""Fine-tuned run directories: the ``classifier/`` layout and :func:`load_finetuned`.

Layout written by :func:`clinfusion.downstream.finetune.run_finetune`::

    <run>/config.yaml             resolved config (model/image sections = the pretrained run's)
    <run>/preprocessing.json      TabularPreprocessor (JSON)
    <run>/classifier/meta.json    {"primary", "heads", "label": LabelInfo, "spatial_dims", "in_channels"}
    <run>/classifier/<head>/head.json   {"kind", "head", "threshold", ...}
    <run>/classifier/<head>/model.safetensors          fused_classifier (linear / mlp / full)
    <run>/classifier/<head>/encoder.safetensors + lightgbm_<k>.txt   lightgbm head

No pickle anywhere: safetensors for tensors, LightGBM's text format for trees, JSON for meta.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from clinfusion.downstream.task import LabelInfo
from clinfusion.errors import RunDirError

CLASSIFIER_DIR = "classifier"
META = "meta.json"
HEAD_META = "head.json"
FINETUNED_REQUIRED = ("config.yaml", "preprocessing.json", f"{CLASSIFIER_DIR}/{META}")


def check_run_dir(run_dir: str | Path, required: Sequence[Sequence[str]], kind: str) -> Path:
    """RunDirError listing every missing item; each entry of ``required`` is a list of
    alternatives (any one present is enough)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{kind} run directory {str(path)!r} not found: pass a directory written by clinfusion")
    missing = [" or ".join(alts) for alts in required if not any((path / a).exists() for a in alts)]
    if missing:
        raise RunDirError(f"{kind} run directory {str(path)!r} is incomplete: missing {', '.join(missing)}; "
                          f"re-run the {kind} step or point to a finished run")
    return path


def raw_features(batch: Dict[str, Any]) -> np.ndarray:
    """``[B, F_num + F_cat]`` clinical features, NaN where missing (lightgbm raw inputs)."""
    def arr(k):
        v = batch[k]
        return v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)

    num = np.where(arr("num_missing"), np.nan, arr("num")).astype(np.float64)
    cat = np.where(arr("cat_missing"), np.nan, arr("cat")).astype(np.float64)
    return np.concatenate([num, cat], axis=1)


@dataclass
class FinetunedRun:
    """A loaded fine-tuned run, ready for prediction and explanation.

    ``classifier`` (linear / mlp / full heads) is a ``FusedClassifier`` in eval mode whose
    ``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)``
    returns logits ``[B, K_out]``; for the lightgbm head it is None and ``boosters`` +
    :meth:`features` give the model (input matrix ``[B, D (+F_num+F_cat)]`` named by
    ``feature_names``). ``model`` is the MultimodalModel in both cases.
    """

    run_dir: Path
    cfg: Any  # RunConfig
    preprocessor: Any  # TabularPreprocessor
    label: LabelInfo  # task, classes, label columns
    head: str  # linear | mlp | full | lightgbm
    threshold: Any  # float (binary), list per label (multilabel) or None (multiclass)
    model: torch.nn.Module  # MultimodalModel, eval mode
    classifier: Optional[torch.nn.Module] = None  # FusedClassifier, eval mode (None for lightgbm)
    boosters: Optional[List[Any]] = None  # lightgbm.Booster per model (multilabel: one per label)
    feature_names: List[str] = field(default_factory=list)  # lightgbm input columns; else clinical columns
    with_raw_features: bool = False  # lightgbm: raw clinical features appended to the embedding
    head_meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.label.task

    @property
    def class_names(self) -> List[str]:
        return list(self.label.classes)

    @torch.no_grad()
    def features(self, batch: Dict[str, Any]) -> np.ndarray:
        """LightGBM input matrix ``[B, F]`` for a batch (layout of ``datasets/batch.py``)."""
        emb = self.model(batch)["fused"].float().cpu().numpy().astype(np.float64)
        return np.concatenate([emb, raw_features(batch)], axis=1) if self.with_raw_features else emb

    @torch.no_grad()
    def predict_proba(self, batch: Dict[str, Any]) -> np.ndarray:
        """Probabilities ``[B, K_out]`` (binary: P(positive), one column)."""
        from clinfusion.downstream.lgbm import predict_boosters
        from clinfusion.downstream.task import to_probs

        if self.classifier is not None:
            return to_probs(self.classifier.forward_batch(batch), self.task)
        return predict_boosters(self.boosters, self.features(batch), self.task, self.label.num_outputs)


def read_meta(run_dir: Path) -> Dict[str, Any]:
    return json.loads((Path(run_dir) / CLASSIFIER_DIR / META).read_text())


def load_finetuned(run_dir: str | Path, head: Optional[str] = None, device: Optional[str] = None,
                   overrides: Sequence[str] = ()) -> FinetunedRun:
    """Load a fine-tuned run (primary head unless ``head`` names another saved one).

    ``device``: where the model runs (default: the stored ``device`` setting, ``auto`` = CUDA
    when available). ``overrides``: dotted config overrides applied to the stored config (e.g.
    ``cohort.missing_features=missing``, ``evaluation.bootstrap=200``).

    Raises RunDirError when the directory is incomplete or ``head`` was not saved.
    """
    from safetensors.torch import load_model

    from clinfusion.config import load_config
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.training.distributed import resolve_device
    from clinfusion.downstream.heads.fused import make_classifier
    from clinfusion.downstream.lgbm import load_boosters
    from clinfusion.models.io import build_model

    path = check_run_dir(run_dir, [[r] for r in FINETUNED_REQUIRED], "fine-tuned")
    cfg = load_config(path / "config.yaml", list(overrides))
    pre = TabularPreprocessor.load(path / "preprocessing.json")
    meta = read_meta(path)
    head = head or meta["primary"]
    if head not in meta["heads"]:
        raise RunDirError(f"fine-tuned run {str(path)!r} has no saved head {head!r}; saved: {', '.join(meta['heads'])}")
    hdir = check_run_dir(path / CLASSIFIER_DIR / head, [[HEAD_META]], f"head {head!r} of the fine-tuned")
    hmeta = json.loads((hdir / HEAD_META).read_text())
    label = LabelInfo.from_dict(meta["label"])
    dev = torch.device(device) if device else resolve_device(cfg.device)
    model = build_model(cfg, pre.schema)
    run = FinetunedRun(run_dir=path, cfg=cfg, preprocessor=pre, label=label, head=head,
                       threshold=hmeta.get("threshold"), model=model, head_meta=hmeta,
                       feature_names=list(pre.schema.clinical_columns))
    if hmeta["kind"] == "fused_classifier":
        clf = make_classifier(model, label.num_outputs, hmeta["head"], hmeta["hidden"], hmeta["freeze_encoders"],
                              hmeta.get("features", "fused"))
        load_model(clf, str(hdir / hmeta["weights"]), device=str(dev))
        run.classifier = clf.to(dev).eval()
    else:
        load_model(model, str(hdir / hmeta["encoder_weights"]), device=str(dev))
        run.boosters = load_boosters(hdir, hmeta["boosters"])
        run.feature_names = list(hmeta["feature_names"])
        run.with_raw_features = bool(hmeta["with_raw_features"])
    run.model = model.to(dev).eval()
    return run

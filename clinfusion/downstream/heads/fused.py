"""Predictors built on :class:`clinfusion.models.FusedClassifier` (probe, mlp, full, scratch).

One place adapts to the classifier's face: ``FusedClassifier(model, num_outputs, head,
hidden, freeze_encoders)`` with ``.model`` (the MultimodalModel), ``.head`` (fused
``[B, D]`` -> logits ``[B, K_out]``) and ``forward_batch(batch) -> [B, K_out]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from safetensors.torch import save_model

from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.heads.base import Predictor
from clinfusion.downstream.task import to_probs

WEIGHTS = "model.safetensors"


@torch.no_grad()
def predict_on_batches(module: torch.nn.Module, data: FinetuneData, rows: np.ndarray, forward, task: str,
                       variant: str = "all") -> np.ndarray:
    """Probabilities ``[len(rows), K_out]`` of ``forward(batch) -> logits`` in row order."""
    module.eval()
    out = [to_probs(forward(b), task) for b, _ in data.batches(rows, variant)]
    return np.concatenate(out) if out else np.zeros((0, 1))


def make_classifier(model: torch.nn.Module, num_outputs: int, head: str, hidden: int,
                    freeze_encoders: bool, features: str = "fused") -> torch.nn.Module:
    from clinfusion.models import FusedClassifier

    return FusedClassifier(model, num_outputs, head=head, hidden=hidden, freeze_encoders=freeze_encoders,
                           features=features)


class FusedPredictor(Predictor):
    """A trained FusedClassifier.

    With ``frozen=True`` (probe heads) predictions reuse the data's cached fused
    embeddings (``head(embed(batch))``), which equals ``forward_batch`` for a frozen model.
    """

    def __init__(self, name: str, classifier: torch.nn.Module, task: str, head: str, hidden: int,
                 frozen: bool, meta: Optional[Dict[str, Any]] = None, features: str = "fused") -> None:
        self.name, self.classifier, self.task, self.features = name, classifier, task, features
        self.head, self.hidden, self.frozen = head, hidden, frozen
        self.meta = meta or {}

    @torch.no_grad()
    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        self.classifier.eval()
        if self.frozen:
            emb = torch.as_tensor(data.embed(self.classifier.model, rows, variant, self.features), device=data.device)
            return to_probs(self.classifier.head(emb), self.task)
        return predict_on_batches(self.classifier, data, rows, self.classifier.forward_batch, self.task, variant)

    def save(self, directory: Path) -> Dict[str, Any]:
        save_model(self.classifier, str(Path(directory) / WEIGHTS))
        return {"kind": "fused_classifier", "head": self.head, "hidden": self.hidden,
                "freeze_encoders": self.frozen, "features": self.features, "weights": WEIGHTS, **self.meta}

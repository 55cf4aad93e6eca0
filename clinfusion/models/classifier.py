"""A classifier on one of the model's embeddings, callable with plain tensors (captum-friendly).

``FusedClassifier(model, num_outputs, head="linear"|"mlp", hidden=128, freeze_encoders=False,
features="fused")``

``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)
-> logits [B, K]``: every argument is a tensor of the batch layout
(:mod:`clinfusion.datasets.batch`), so attribution libraries can perturb any of them.

``features`` picks the embedding the head reads (:data:`FEATURES`): ``fused`` ``[B, F]``
(default), ``image`` = ``image_emb [B, Di]``, ``table`` = ``table_emb [B, Dt]`` or
``concat`` = ``[image_emb, table_emb]`` ``[B, Di + Dt]`` (linear probes per input).
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import torch
from torch import Tensor, nn

from clinfusion.datasets.batch import INPUT_KEYS
from clinfusion.models.heads import HEAD_LAYERS
from clinfusion.models.multimodal import MultimodalModel

# features kind -> (embeddings dict -> [B, D]); see the module docstring
FEATURES: Dict[str, Callable[[Dict[str, Tensor]], Tensor]] = {
    "fused": lambda out: out["fused"],
    "image": lambda out: out["image_emb"],
    "table": lambda out: out["table_emb"],
    "concat": lambda out: torch.cat([out["image_emb"], out["table_emb"]], dim=1),
}
# features kind -> the inputs a head on that embedding depends on
FEATURE_INPUTS: Dict[str, Tuple[str, ...]] = {"fused": ("image", "table"), "image": ("image",),
                                              "table": ("table",), "concat": ("image", "table")}


def feature_dim(model: MultimodalModel, features: str) -> int:
    """Width ``D`` of the ``features`` embedding of ``model``."""
    dims = {"fused": model.fused_dim, "image": model.image_encoder.embed_dim, "table": model.table_encoder.embed_dim}
    dims["concat"] = dims["image"] + dims["table"]
    if features not in dims:
        raise ValueError(f"unknown features {features!r}; expected one of {', '.join(FEATURES)}")
    return dims[features]


class FusedClassifier(nn.Module):
    def __init__(self, model: MultimodalModel, num_outputs: int, head: str = "linear", hidden: int = 128,
                 freeze_encoders: bool = False, features: str = "fused") -> None:
        super().__init__()
        self.model = model
        self.head_name = head
        self.features = features
        self.head = HEAD_LAYERS.create(head, feature_dim(model, features), num_outputs, hidden)
        self.num_outputs = num_outputs
        self.freeze_encoders = freeze_encoders
        if freeze_encoders:
            for p in self.model.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "FusedClassifier":
        super().train(mode)
        if self.freeze_encoders:  # frozen encoders keep eval-mode BatchNorm/dropout (linear probe)
            self.model.eval()
        return self

    def forward(self, image: Tensor, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                omics: Tensor, omics_missing: Tensor, modality_mask: Tensor) -> Tensor:
        out = self.model.forward_tensors(image, num, num_missing, cat, cat_missing, omics, omics_missing,
                                         modality_mask)
        return self.head(FEATURES[self.features](out))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward_batch(self, batch: Dict[str, Tensor]) -> Tensor:
        """Batch dict -> logits ``[B, K]``."""
        return self(*(batch[k] for k in INPUT_KEYS))

    @torch.no_grad()
    def embed(self, batch: Dict[str, Tensor]) -> Tensor:
        """The head's input embedding ``[B, D]`` (``features``) without the head."""
        return FEATURES[self.features](self.model(batch))

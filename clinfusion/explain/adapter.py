"""Build an :class:`~clinfusion.explain.common.Explainable` from a fine-tuned classifier.

The handles are found by type, not by attribute name: the image encoder is the
:class:`~clinfusion.encoders.image_base.ImageEncoder` inside the classifier and the token
layer is its :class:`~clinfusion.encoders.tokenizer.FeatureTokenizer` (output
``[B, T, H]`` in ``token_names`` order: numeric, categorical, omics groups).
"""

from __future__ import annotations

from typing import List, Optional

from torch import nn

from clinfusion.encoders.image_base import ImageEncoder
from clinfusion.encoders.tokenizer import FeatureTokenizer
from clinfusion.explain.common import Explainable


def _first(model: nn.Module, kind: type) -> Optional[nn.Module]:
    return next((m for m in model.modules() if isinstance(m, kind)), None)


def omics_groups_of(tok: FeatureTokenizer) -> List[List[int]]:
    """Gene indices of each omics token, from the tokenizer's ``omics_index`` / ``omics_valid``."""
    if not tok.omics_index.numel():
        return []
    return [idx[val].tolist() for idx, val in zip(tok.omics_index.cpu(), tok.omics_valid.cpu())]


def explainable_from_classifier(classifier: nn.Module, task: str) -> Explainable:
    """Wrap a ``FusedClassifier`` (eval mode) for the attribution methods."""
    img: Optional[ImageEncoder] = _first(classifier, ImageEncoder)  # type: ignore[assignment]
    tok: Optional[FeatureTokenizer] = _first(classifier, FeatureTokenizer)  # type: ignore[assignment]
    ex = Explainable(model=classifier.eval(), task=task, image_encoder=img,
                     default_cam_layer=getattr(img, "default_cam_layer", None),
                     cam_token_grid=getattr(img, "cam_token_grid", None), token_layer=tok)
    if tok is not None:
        s = tok.schema
        ex.numeric, ex.categorical = list(s.numeric), list(s.categorical)
        ex.omics_columns = list(s.omics_columns)
        ex.omics_groups = omics_groups_of(tok)
        ex.group_names = list(tok.token_names[s.n_num + s.n_cat:])
    return ex

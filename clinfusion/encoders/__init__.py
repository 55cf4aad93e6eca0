"""clinfusion.encoders: image encoders (MONAI) and the tabular/genomic transformer.

``create_image_encoder``/``list_image_encoders`` live in :mod:`clinfusion.encoders.image`,
``TabularEncoder`` in :mod:`clinfusion.encoders.tabular`, ``FeatureTokenizer`` in
:mod:`clinfusion.encoders.tokenizer`, ``TableSchema`` in :mod:`clinfusion.encoders.schema`.
Names are imported lazily so that reading a ``TableSchema`` does not import MONAI.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "ImageEncoder": "image", "create_image_encoder": "image", "list_image_encoders": "image",
    "TabularEncoder": "tabular", "FeatureTokenizer": "tokenizer", "TableSchema": "schema",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"clinfusion.encoders.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'clinfusion.encoders' has no attribute {name!r}")

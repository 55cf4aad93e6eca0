"""Create image encoders by name: ``create_image_encoder(cfg, spatial_dims, in_channels)``.

Names (``list_image_encoders()``): ``cnn_tiny``, ``resnet10/18/34/50``, ``vit_tiny``,
``vit_small``; the same name gives a 2D or a 3D network via ``spatial_dims``; ``hf`` wraps a
Hugging Face vision model (``cfg.hf_model``: local folder or cached hub id, 2D; see
:mod:`clinfusion.encoders.hf`). All share the :class:`~clinfusion.encoders.image_base.ImageEncoder`
face. Weights are only ever read locally (``cfg.weights``, ``cfg.hf_model``), never downloaded.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders import cnn, hf, resnet, vit  # noqa: F401  (register constructors)
from clinfusion.encoders.image_base import IMAGE_ENCODERS, ImageEncoder
from clinfusion.encoders.weights import load_weights
from clinfusion.errors import ConfigError

__all__ = ["ImageEncoder", "IMAGE_ENCODERS", "create_image_encoder", "list_image_encoders"]


def create_image_encoder(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
                         image_size: Optional[Sequence[int]] = None) -> ImageEncoder:
    """Build the encoder ``cfg.name`` and load ``cfg.weights`` if given.

    Args:
        cfg: the ``model.image_encoder`` section.
        spatial_dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        in_channels: ``C``.
        image_size: spatial size ``S`` (needed by ViTs to pick the patch size).

    Raises:
        ConfigError: unknown name (lists valid ones), bad dims, weights file missing or
            not matching (names the file and the first mismatched keys).
    """
    if spatial_dims not in (2, 3):
        raise ConfigError(f"image.spatial_dims: got {spatial_dims}; use 2 or 3")
    if cfg.width is not None and cfg.width < 1:
        raise ConfigError(f"model.image_encoder.width: got {cfg.width}; use a positive integer or null")
    enc = IMAGE_ENCODERS.create(cfg.name, cfg, spatial_dims, in_channels, image_size)
    if (cfg.pool != "avg" or cfg.stem_stride is not None) and not enc.cnn_options:
        raise ConfigError(f"model.image_encoder.pool / stem_stride: only CNN encoders (cnn_tiny, resnet*) have them; "
                          f"'{cfg.name}' pools its own tokens: remove these keys")
    if cfg.weights:
        load_weights(enc, cfg.weights)
    return enc


def list_image_encoders() -> List[str]:
    """Registered encoder names, sorted."""
    return IMAGE_ENCODERS.names()

"""``cnn_tiny``: a few MONAI convolution blocks + global average pooling (fast tests)."""

from __future__ import annotations

from typing import Optional, Sequence

from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import Tensor, nn

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image_base import IMAGE_ENCODERS, ImageEncoder


class TinyCNN(ImageEncoder):
    """Three strided conv stages of width ``(w, 2w, 4w)`` then global average pooling.

    Shapes: ``[B, C, *S]`` -> stages halve every spatial size -> ``[B, 4w]``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width]
        stages, c_in = [], in_channels
        for c in chans:
            stages.append(
                Convolution(spatial_dims, c_in, c, strides=2, kernel_size=3, act="relu", norm="batch")
            )
            c_in = c
        self.features = nn.Sequential(*stages)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.drop = nn.Dropout(dropout)
        self.embed_dim = chans[-1]
        self.default_cam_layer = f"features.{len(chans) - 1}"

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.features:
            x = self._run(stage, x)
        return self.drop(self.pool(x).flatten(1))


@IMAGE_ENCODERS.register("cnn_tiny")
def cnn_tiny(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
             image_size: Optional[Sequence[int]] = None) -> TinyCNN:
    return TinyCNN(spatial_dims, in_channels, width=cfg.width or 16, dropout=cfg.dropout)

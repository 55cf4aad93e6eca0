"""``cnn_tiny``: three MONAI convolution blocks + global pooling (small images, fast tests)."""

from __future__ import annotations

from typing import Optional, Sequence

from monai.networks.blocks import Convolution
from torch import Tensor, nn

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image_base import IMAGE_ENCODERS, GlobalPool, ImageEncoder


class TinyCNN(ImageEncoder):
    """Three conv stages of width ``(w, 2w, 4w)`` (3x3, batch norm, ReLU) then global pooling.

    Shapes: ``[B, C, *S]`` -> stage 1 divides every spatial size by ``stem_stride`` (2 by default),
    stages 2-3 halve it -> ``[B, 4w, *S']`` -> pooled ``[B, 4w]`` (``[B, 8w]`` for ``avgmax``).
    """

    cnn_options = True

    def __init__(self, spatial_dims: int, in_channels: int, width: int = 16, dropout: float = 0.0,
                 pool: str = "avg", stem_stride: int = 2) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width]
        stages, c_in = [], in_channels
        for i, c in enumerate(chans):
            stages.append(Convolution(spatial_dims, c_in, c, strides=stem_stride if i == 0 else 2, kernel_size=3,
                                      act="relu", norm="batch"))
            c_in = c
        self.features = nn.Sequential(*stages)
        self.pool = GlobalPool(pool)
        self.drop = nn.Dropout(dropout)
        self.embed_dim = chans[-1] * GlobalPool.WIDTH[pool]
        self.default_cam_layer = f"features.{len(chans) - 1}"

    def forward_features(self, x: Tensor) -> Tensor:
        for stage in self.features:
            x = self._run(stage, x)
        return self.drop(self.pool(x))


@IMAGE_ENCODERS.register("cnn_tiny")
def cnn_tiny(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
             image_size: Optional[Sequence[int]] = None) -> TinyCNN:
    return TinyCNN(spatial_dims, in_channels, width=cfg.width or 16, dropout=cfg.dropout, pool=cfg.pool,
                   stem_stride=cfg.stem_stride or 2)

"""ResNet-10/18/34/50 image encoders in 2D or 3D (He et al. 2016; MONAI ``ResNet``).

The MONAI network is built without its ``fc`` (``feed_forward=False``) and with a
stride-2 stem and max pool (as in the original ResNet; ``stem_stride: 1`` keeps full resolution
and drops the stem's max pool, for small images); the pooled ``layer4`` output is the embedding.
3D variants follow Chen et al. 2019 (Med3D / MedicalNet), whose local weights load here.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from torch import Tensor, nn

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image_base import IMAGE_ENCODERS, GlobalPool, ImageEncoder


class ResNetEncoder(ImageEncoder):
    """MONAI ResNet trunk + global pooling (``avg`` by default, ``max`` or ``avgmax``).

    Shapes: ``[B, C, *S]`` -> ``layer4`` ``[B, 8w*e, *S/32]`` (``*S/8`` with ``stem_stride`` 1)
    -> ``[B, 8w*e]`` (``[B, 16w*e]`` for ``avgmax``) with base width ``w`` (64 by default,
    ``cfg.width`` overrides) and block expansion ``e`` (1 or 4).
    """

    STAGES = ("layer1", "layer2", "layer3", "layer4")
    cnn_options = True

    def __init__(self, block: type, layers: List[int], spatial_dims: int, in_channels: int,
                 width: int = 64, dropout: float = 0.0, pool: str = "avg", stem_stride: int = 2) -> None:
        super().__init__()
        self.net = ResNet(
            block=block, layers=layers, block_inplanes=[width, 2 * width, 4 * width, 8 * width],
            spatial_dims=spatial_dims, n_input_channels=in_channels, conv1_t_stride=stem_stride,
            no_max_pool=stem_stride == 1, feed_forward=False,
        )
        self.pool = GlobalPool(pool)
        self.drop = nn.Dropout(dropout)
        self.embed_dim = 8 * width * block.expansion * GlobalPool.WIDTH[pool]
        self.default_cam_layer = "net.layer4"

    def _stem(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.act(n.bn1(n.conv1(x)))
        return x if n.no_max_pool else n.maxpool(x)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self._stem(x)
        for name in self.STAGES:
            x = self._run(getattr(self.net, name), x)
        return self.drop(self.pool(x))


def _register(name: str, block: type, layers: List[int]) -> None:
    @IMAGE_ENCODERS.register(name)
    def ctor(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
             image_size: Optional[Sequence[int]] = None) -> ResNetEncoder:
        return ResNetEncoder(block, layers, spatial_dims, in_channels, width=cfg.width or 64, dropout=cfg.dropout,
                             pool=cfg.pool, stem_stride=cfg.stem_stride or 2)

    ctor.__doc__ = f"{name}: MONAI ResNet, layers {layers}, {block.__name__}."


_register("resnet10", ResNetBlock, [1, 1, 1, 1])
_register("resnet18", ResNetBlock, [2, 2, 2, 2])
_register("resnet34", ResNetBlock, [3, 4, 6, 3])
_register("resnet50", ResNetBottleneck, [3, 4, 6, 3])

"""Vision Transformer image encoders, 2D or 3D (Dosovitskiy et al. 2021).

Patch embedding is MONAI's ``PatchEmbeddingBlock`` (conv projection + learned position
embedding, any spatial_dims); the blocks are pre-norm ``torch.nn.TransformerEncoderLayer``
(MONAI's own ``ViT`` blocks need the optional ``einops`` package, which we do not ship).

``vit_tiny`` (width 192, 3 heads) and ``vit_small`` (384, 6 heads), 12 blocks each as in
DeiT (Touvron et al. 2021). The patch size is the largest of 16/8/4/2/1 that divides
every image dimension while leaving at least 4 patches. The embedding is the mean of
the final (layer-normed) patch tokens.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from monai.networks.blocks import PatchEmbeddingBlock
from torch import Tensor, nn

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image_base import IMAGE_ENCODERS, ImageEncoder
from clinfusion.errors import ConfigError


def choose_patch_size(image_size: Sequence[int]) -> int:
    """Largest patch in (16, 8, 4, 2, 1) dividing every size, preferring >= 4 patches."""
    dividing = [p for p in (16, 8, 4, 2, 1) if all(s % p == 0 for s in image_size)]
    enough = [p for p in dividing if _n_tokens(image_size, p) >= 4]
    return (enough or dividing)[0]


def _n_tokens(size: Sequence[int], p: int) -> int:
    n = 1
    for s in size:
        n *= s // p
    return n


def _heads_for(width: int, default: int) -> int:
    """``default`` heads, or for an overridden width about one head per 64 channels."""
    if width % default == 0 and width // default >= 16:
        return default
    h = max(1, width // 64)
    while width % h:
        h -= 1
    return h


class ViTEncoder(ImageEncoder):
    """Patch embedding + pre-norm transformer blocks, mean-pooled.

    Shapes: ``[B, C, *S]`` -> patches ``[B, N, D]`` (``N = prod(S / p)``) -> blocks ->
    ``[B, D]``. ``default_cam_layer`` is the last block (output ``[B, N, D]``; reshape to
    ``[B, D, *cam_token_grid]`` for Grad-CAM).
    """

    def __init__(self, spatial_dims: int, in_channels: int, image_size: Sequence[int], width: int,
                 heads: int, depth: int = 12, dropout: float = 0.0) -> None:
        super().__init__()
        size = tuple(int(s) for s in image_size)
        patch = choose_patch_size(size)
        self.net = nn.Module()
        self.net.patch_embedding = PatchEmbeddingBlock(
            in_channels=in_channels, img_size=size, patch_size=patch, hidden_size=width, num_heads=heads,
            proj_type="conv", pos_embed_type="learnable", dropout_rate=dropout, spatial_dims=spatial_dims,
        )
        self.net.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.net.norm = nn.LayerNorm(width)
        self.patch_size = patch
        self.embed_dim = width
        self.default_cam_layer = f"net.blocks.{depth - 1}"
        self.cam_token_grid: Tuple[int, ...] = tuple(s // patch for s in size)

    def patch_tokens(self, x: Tensor) -> Tensor:
        """``[B, C, *S]`` -> patch tokens with position embedding ``[B, N, D]`` (row-major grid order)."""
        return self.net.patch_embedding(x)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """Transformer blocks + final norm on any token subset: ``[B, n, D] -> [B, n, D]``
        (the MAE encoder runs on the visible patches only, He et al. 2022)."""
        for blk in self.net.blocks:
            tokens = self._run(blk, tokens)
        return self.net.norm(tokens)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encode_tokens(self.patch_tokens(x)).mean(dim=1)


def _register(name: str, width: int, heads: int) -> None:
    @IMAGE_ENCODERS.register(name)
    def ctor(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
             image_size: Optional[Sequence[int]] = None) -> ViTEncoder:
        if image_size is None:
            raise ConfigError(f"model.image_encoder.name: {name} needs the image size (image.size); pass image_size")
        if len(image_size) != spatial_dims:
            raise ConfigError(
                f"image.size: {list(image_size)} has {len(image_size)} entries but spatial_dims is {spatial_dims}"
            )
        w = cfg.width or width
        return ViTEncoder(spatial_dims, in_channels, image_size, w, _heads_for(w, heads), dropout=cfg.dropout)

    ctor.__doc__ = f"{name}: ViT width {width}, {heads} heads, 12 blocks."


_register("vit_tiny", 192, 3)
_register("vit_small", 384, 6)

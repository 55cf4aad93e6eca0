"""The one face every image encoder has, and the registry of named constructors.

A constructor is registered as ``@IMAGE_ENCODERS.register("name")`` and called as
``ctor(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int, image_size)``.
Use :func:`clinfusion.encoders.image.create_image_encoder` rather than the registry.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from clinfusion.registry import Registry

IMAGE_ENCODERS = Registry("image encoder")


class GlobalPool(nn.Module):
    """Global pooling of a CNN feature map: ``[B, C, *S]`` -> ``[B, C]`` (``avg``, ``max``) or
    ``[B, 2C]`` (``avgmax``: average and maximum concatenated)."""

    WIDTH = {"avg": 1, "max": 1, "avgmax": 2}

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in self.WIDTH:
            raise ValueError(f"pool must be one of {sorted(self.WIDTH)}, got {mode!r}")
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)
        if self.mode == "avg":
            return flat.mean(-1)
        if self.mode == "max":
            return flat.amax(-1)
        return torch.cat([flat.mean(-1), flat.amax(-1)], dim=1)


class ImageEncoder(nn.Module):
    """Base of all image encoders (timm-style uniform interface).

    Attributes:
        embed_dim: width ``D`` of :meth:`forward_features`.
        default_cam_layer: module path (``encoder.get_submodule(path)``) of the last
            convolutional stage / transformer block, the Grad-CAM target.
        cnn_options: whether ``model.image_encoder.pool`` and ``stem_stride`` apply (CNNs).
        cam_token_grid: ``None`` for CNNs (the CAM layer outputs ``[B, C, *S']``); for ViTs
            the patch grid ``S'`` so the block output ``[B, N, D]`` can be reshaped to
            ``[B, D, *S']`` (``N = prod(S')``).
    """

    embed_dim: int
    default_cam_layer: str
    cam_token_grid: Optional[Tuple[int, ...]] = None
    cnn_options = False  # True where the encoder honours model.image_encoder.pool / stem_stride

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute stage / block activations in backward (saves memory in training)."""
        self.grad_checkpointing = bool(enable)

    def _run(self, stage: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Apply one stage, through :func:`torch.utils.checkpoint.checkpoint` if enabled."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(stage, x, use_reentrant=False)
        return stage(x)

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``x [B, C, *S]`` -> pooled embedding ``[B, embed_dim]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`: ``[B, C, *S]`` -> ``[B, embed_dim]``."""
        return self.forward_features(x)

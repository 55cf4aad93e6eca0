"""Hugging Face vision backbones as image encoders: ``model.image_encoder.name: hf``.

``model.image_encoder.hf_model`` is a local ``save_pretrained`` folder or a hub id (e.g.
``facebook/dinov2-small``) that is *already* in the local Hugging Face cache: loading is
always ``local_files_only=True`` (nothing is downloaded; a missing model is a one-line
``ConfigError``). Any ``AutoModel`` vision architecture works (ViT, DeiT, DINOv2,
ConvNeXt, Swin, and medical encoders published in those architectures, e.g. RAD-DINO).

Input: clinfusion images ``[B, C, H, W]`` in ``[0, 1]`` (``image.intensity.mode: scale``)
are normalised with the model's own ``image_mean`` / ``image_std`` (from its
``preprocessor_config.json`` when present; else left as they are) and a 1-channel image is
repeated to the model's 3 channels. Output: the CLS token of the final hidden state for
ViT-like models, the model's pooled output otherwise (ConvNeXt, Swin: global average
pool + norm), ``[B, embed_dim]``. 2D only.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image_base import IMAGE_ENCODERS, ImageEncoder
from clinfusion.errors import ConfigError

KEY = "model.image_encoder.hf_model"
CLS_MODELS = {"vit", "deit", "dinov2", "dinov2_with_registers", "beit", "data2vec-vision", "vit_msn", "vit_mae"}


def _offline_error(src: str, exc: BaseException) -> ConfigError:
    why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(
        f"{KEY}: {src!r} is neither a local save_pretrained folder nor a hub id in the local Hugging Face cache "
        f"(loading is offline, nothing is downloaded: {why[:160]}); download it on a connected machine "
        f"(`huggingface-cli download {src}`) or give a local folder"
    )


def load_hf_backbone(src: str, cache_dir: Optional[str] = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """``(model, preprocessor config dict or {})`` from a folder or a cached hub id, offline."""
    from transformers import AutoModel
    from transformers.utils import cached_file

    try:
        model = AutoModel.from_pretrained(src, local_files_only=True, cache_dir=cache_dir)
    except (OSError, ValueError) as exc:
        raise _offline_error(src, exc) from None
    proc: Dict[str, Any] = {}
    try:
        path = cached_file(src, "preprocessor_config.json", local_files_only=True, cache_dir=cache_dir,
                           _raise_exceptions_for_missing_entries=False)
    except OSError:
        path = None
    if path:
        with open(path) as f:
            proc = json.load(f)
    return model, proc


def _embed_dim(config: Any) -> int:
    sizes = getattr(config, "hidden_sizes", None)
    if getattr(config, "model_type", "") not in CLS_MODELS and sizes:
        return int(sizes[-1])
    return int(config.hidden_size)


def _cam_layer(model: nn.Module) -> str:
    """Last encoder stage / layer (``net.``-prefixed module path)."""
    names = [n for n, _ in model.named_modules()]
    for prefix in ("encoder.stages.", "encoder.layers.", "encoder.layer.", "layers."):
        idx = sorted({int(n[len(prefix):].split(".")[0]) for n in names if n.startswith(prefix)})
        if idx:
            return f"net.{prefix}{idx[-1]}"
    return "net"


class HFImageEncoder(ImageEncoder):
    """A Hugging Face vision ``AutoModel`` behind the :class:`ImageEncoder` face.

    Shapes: ``[B, C, H, W]`` -> (channels repeated to the model's, normalised) -> backbone
    -> ``[B, embed_dim]``.
    """

    def __init__(self, model: nn.Module, proc: Dict[str, Any], in_channels: int, source: str,
                 image_size: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.net = model
        self.source = source
        cfg = model.config
        self.model_type = str(getattr(cfg, "model_type", ""))
        self.model_channels = int(getattr(cfg, "num_channels", 3))
        if in_channels not in (1, self.model_channels):
            raise ConfigError(f"image.channels: {in_channels} channels cannot feed {source!r}, which takes "
                              f"{self.model_channels}; use image.channels: {self.model_channels} or 1")
        mean, std = proc.get("image_mean"), proc.get("image_std")
        normalise = bool(proc.get("do_normalize", True)) and mean is not None and std is not None
        shape = (1, self.model_channels, 1, 1)
        mean_t = torch.tensor(mean if normalise else [0.0], dtype=torch.float32).expand(self.model_channels).reshape(shape)
        std_t = torch.tensor(std if normalise else [1.0], dtype=torch.float32).expand(self.model_channels).reshape(shape)
        self.register_buffer("pixel_mean", mean_t.clone(), persistent=False)
        self.register_buffer("pixel_std", std_t.clone(), persistent=False)
        self.embed_dim = _embed_dim(cfg)
        self.default_cam_layer = _cam_layer(model)
        patch = getattr(cfg, "patch_size", None)
        if self.model_type in CLS_MODELS and image_size is not None and isinstance(patch, int):
            # the CAM layer outputs [B, extra + N, D] (CLS / register tokens first): Grad-CAM reshapes the N
            self.cam_token_grid = tuple(int(s) // patch for s in image_size)
        self._interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        if getattr(self.net, "supports_gradient_checkpointing", False):
            self.net.gradient_checkpointing_enable() if enable else self.net.gradient_checkpointing_disable()

    def pixel_values(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> the model's input ``[B, C_model, H, W]`` (repeat + normalise)."""
        if x.dim() != 4:
            raise ValueError(f"{self.source}: Hugging Face vision encoders take [B, C, H, W]; got {tuple(x.shape)}")
        if x.shape[1] == 1 and self.model_channels != 1:
            x = x.expand(-1, self.model_channels, -1, -1)
        return (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)

    def forward_features(self, x: Tensor) -> Tensor:
        kw = {"interpolate_pos_encoding": True} if self._interpolate else {}
        out = self.net(pixel_values=self.pixel_values(x), **kw)
        if self.model_type in CLS_MODELS:
            return out.last_hidden_state[:, 0]  # CLS token after the final norm
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        hidden = out.last_hidden_state  # [B, C, h, w] (CNN) or [B, N, D] (tokens)
        return hidden.flatten(2).mean(-1) if hidden.dim() == 4 else hidden.mean(1)


@IMAGE_ENCODERS.register("hf")
def hf(cfg: ImageEncoderConfig, spatial_dims: int, in_channels: int,
       image_size: Optional[Sequence[int]] = None) -> HFImageEncoder:
    """hf: a Hugging Face vision model from ``model.image_encoder.hf_model`` (local, offline)."""
    if not cfg.hf_model:
        raise ConfigError(f"{KEY}: image encoder 'hf' needs a save_pretrained folder or a cached hub id here")
    if spatial_dims != 2:
        raise ConfigError(f"model.image_encoder.name: 'hf' vision models are 2D; image.spatial_dims is {spatial_dims} "
                          f"(use a MONAI encoder such as resnet18 or vit_small for 3D)")
    model, proc = load_hf_backbone(cfg.hf_model, cfg.hf_cache_dir)
    return HFImageEncoder(model, proc, in_channels, cfg.hf_model, image_size)

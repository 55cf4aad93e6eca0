"""Image attribution maps through captum, 2D and 3D, batched, on the model's device.

Every method is registered in :data:`IMAGE_METHODS` as
``fn(ex: Explainable, batch, targets [B], cfg: ExplainConfig) -> maps [B, *S]``: one map per
sample at the model input resolution, summed over channels (Grad-CAM upsampled).

* ``integrated_gradients``: Sundararajan et al. 2017, "Axiomatic Attribution for Deep
  Networks" (from the ``cfg.image_baseline`` reference, ``cfg.ig_steps`` Riemann steps);
* ``occlusion``: Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional
  Networks" (patches of ``cfg.occlusion_window`` replaced by the reference, half-window stride);
* ``gradcam``: Selvaraju et al. 2017, "Grad-CAM" on the last conv stage / block (or
  ``cfg.gradcam_layer``), ReLU'd and interpolated to the input size.

The tabular inputs and the modality mask are passed unchanged (``additional_forward_args``),
so a map explains the image's contribution given the sample's table.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion
from torch import Tensor, nn

from clinfusion.config.schema import ExplainConfig
from clinfusion.errors import ConfigError
from clinfusion.explain.common import Explainable, forward_args
from clinfusion.registry import Registry

IMAGE_METHODS = Registry("image attribution method")
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _rest(batch: Dict[str, Any]) -> Tuple[Tensor, ...]:
    return forward_args(batch)[1:]


def _image(batch: Dict[str, Any]) -> Tensor:
    return batch["image"].detach().float().clone().requires_grad_(True)


def _blur(x: Tensor) -> Tensor:
    from monai.networks.layers import GaussianFilter

    sigma = max(max(x.shape[2:]) / 16.0, 0.5)
    return GaussianFilter(x.dim() - 2, sigma).to(x.device)(x)


BASELINES: Dict[str, Callable[[Tensor], Tensor]] = {
    "zero": torch.zeros_like,
    "mean": lambda x: x.flatten(2).mean(-1).view(*x.shape[:2], *[1] * (x.dim() - 2)).expand_as(x).clone(),
    "blur": _blur,
}


def image_reference(x: Tensor, mode: str) -> Tensor:
    """The attribution reference for ``x [B, C, *S]`` (same shape): ``zero``, ``mean`` or ``blur``."""
    return BASELINES[mode](x.detach().float())


@IMAGE_METHODS.register("integrated_gradients")
def integrated_gradients(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig) -> Tensor:
    """IG from the reference image: ``[B, C, *S]`` -> ``[B, *S]`` (channel sum; sums to f(x) - f(ref))."""
    x = _image(batch)
    attr = IntegratedGradients(ex.model).attribute(
        x, baselines=image_reference(x, cfg.image_baseline), target=targets, additional_forward_args=_rest(batch),
        n_steps=cfg.ig_steps, internal_batch_size=max(cfg.batch_size, 1) * 4)
    return attr.detach().sum(dim=1)


def occlusion_window(cfg: ExplainConfig, spatial: Sequence[int]) -> List[int]:
    """Patch size per spatial axis: ``cfg.occlusion_window`` or 1/8 of the image (>= 1)."""
    if cfg.occlusion_window is None:
        return [max(int(s) // 8, 1) for s in spatial]
    win = list(cfg.occlusion_window)
    if len(win) == 1:
        win = win * len(spatial)
    if len(win) != len(spatial) or any(w < 1 or w > s for w, s in zip(win, spatial)):
        raise ConfigError(f"explain.occlusion_window={cfg.occlusion_window} must give {len(spatial)} sizes "
                          f"between 1 and the image size {list(spatial)}")
    return win


@IMAGE_METHODS.register("occlusion")
def occlusion(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig) -> Tensor:
    """Occlusion by the reference's patches: ``[B, C, *S]`` -> ``[B, *S]`` (drop in the target logit)."""
    x = batch["image"].detach().float()
    win = occlusion_window(cfg, x.shape[2:])
    strides = tuple([x.shape[1]] + [max(w // 2, 1) for w in win])
    attr = Occlusion(ex.model).attribute(
        x, sliding_window_shapes=tuple([x.shape[1]] + win), strides=strides,
        baselines=image_reference(x, cfg.image_baseline),
        target=targets, additional_forward_args=_rest(batch), perturbations_per_eval=8)
    return attr.detach().sum(dim=1)


def cam_candidates(encoder: nn.Module) -> List[str]:
    """Module paths usable for Grad-CAM: convolution layers, the blocks holding them, and the
    members of block lists (``Sequential`` / ``ModuleList``, e.g. transformer blocks)."""
    names = []
    lists = {id(m) for m in encoder.modules() if isinstance(m, (nn.Sequential, nn.ModuleList))}
    parents = {id(c): id(m) for m in encoder.modules() for c in m.children()}
    for name, mod in encoder.named_modules():
        if name and (any(isinstance(m, _CONV) for m in mod.modules()) or parents.get(id(mod)) in lists):
            names.append(name)
    return names


def resolve_cam_layer(ex: Explainable, name: Optional[str]) -> nn.Module:
    """The Grad-CAM module: ``name`` (inside the image encoder, else the whole model) or the default.

    Raises:
        ConfigError: the path names no module; the message lists candidate layers.
    """
    root = ex.image_encoder if ex.image_encoder is not None else ex.model
    path = name or ex.default_cam_layer
    if path is None:
        raise ConfigError("explain.gradcam_layer is not set and the image encoder names no default "
                          f"Grad-CAM layer: set it to one of {', '.join(cam_candidates(root)[-20:])}")
    for base in (root, ex.model):
        try:
            return base.get_submodule(path)
        except AttributeError:
            continue
    cands = cam_candidates(root)
    shown = ", ".join(cands[-30:]) + (f" (and {len(cands) - 30} more)" if len(cands) > 30 else "")
    raise ConfigError(f"explain.gradcam_layer={path!r} is not a layer of the image encoder: "
                      f"use one of {shown}")


class _TokensToGrid(nn.Module):
    """Wraps a ViT block so captum sees ``[B, D, *grid]``; the next block still gets tokens."""

    def __init__(self, block: nn.Module, grid: Tuple[int, ...]) -> None:
        super().__init__()
        self.block, self.grid = block, tuple(grid)
        self.grid_view = nn.Identity()  # the captum layer: its output is [B, D, *grid]

    def forward(self, *a: Any, **k: Any) -> Any:
        out = self.block(*a, **k)
        tokens = out[0] if isinstance(out, tuple) else out
        n = 1
        for g in self.grid:
            n *= g
        extra = tokens.shape[1] - n  # CLS / register tokens in front
        grid = self.grid_view(tokens[:, extra:].transpose(1, 2).reshape(tokens.shape[0], -1, *self.grid))
        tokens = torch.cat([tokens[:, :extra], grid.flatten(2).transpose(1, 2)], dim=1)
        return (tokens,) + tuple(out[1:]) if isinstance(out, tuple) else tokens


def _swap(root: nn.Module, target: nn.Module, new: nn.Module) -> Callable[[], None]:
    """Replace ``target`` inside ``root`` by ``new``; returns the undo."""
    for name, mod in root.named_modules():
        for child_name, child in mod.named_children():
            if child is target:
                setattr(mod, child_name, new)
                return lambda: setattr(mod, child_name, target)
    raise ConfigError("the Grad-CAM layer is not inside the model")


@IMAGE_METHODS.register("gradcam")
def gradcam(ex: Explainable, batch: Dict[str, Any], targets: Tensor, cfg: ExplainConfig) -> Tensor:
    """Grad-CAM: ``[B, C, *S]`` -> ReLU(sum_c w_c A_c) ``[B, *S']`` -> interpolated ``[B, *S]``."""
    layer = resolve_cam_layer(ex, cfg.gradcam_layer)
    x = _image(batch)
    undo = None
    if ex.cam_token_grid is not None:
        wrapper = _TokensToGrid(layer, ex.cam_token_grid)
        undo = _swap(ex.model, layer, wrapper)
        layer = wrapper.grid_view
    try:
        attr = LayerGradCam(ex.model, layer).attribute(
            x, target=targets, additional_forward_args=_rest(batch), relu_attributions=True)
    finally:
        if undo is not None:
            undo()
    if attr.dim() != x.dim():
        raise ConfigError(f"explain.gradcam_layer output has shape {tuple(attr.shape)}, not [B, C, *S']: "
                          "choose a convolutional layer or block")
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.dim() - 2]
    up = LayerAttribution.interpolate(attr.detach().float(), tuple(x.shape[2:]), interpolate_mode=mode)
    return up.sum(dim=1)


def explain_images(ex: Explainable, batch: Dict[str, Any], targets: Tensor, methods: Sequence[str],
                   cfg: ExplainConfig) -> Dict[str, Tensor]:
    """``{method: maps [B, *S]}`` for each image method (CPU float32)."""
    out = {}
    for m in methods:
        out[m] = IMAGE_METHODS.get(m)(ex, batch, targets, cfg).float().cpu()
    return out

"""Load a local state dict into an encoder (never downloaded).

Accepted files: ``.safetensors`` (:func:`safetensors.torch.load_file`) or ``.pt`` /
``.pth`` / ``.bin`` (``torch.load(weights_only=True)``; a ``{"state_dict": ...}`` or
``{"model": ...}`` wrapper is unpacked). A ``module.`` prefix (DDP) is stripped and a
file saved from the bare backbone (keys without the encoder's ``net.`` prefix, with or
without a classifier ``fc.``) is accepted too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

from clinfusion.errors import ConfigError

_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def read_state_dict(path: str | Path, key: str = "model.image_encoder.weights") -> Dict[str, torch.Tensor]:
    """Read a state dict from ``path``; ConfigError (naming ``key`` and the file) if unusable."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}: weights file {str(p)!r} not found; give a local .safetensors/.pt file or null")
    if p.suffix.lower() not in _SUFFIXES:
        raise ConfigError(f"{key}: weights file {str(p)!r} has suffix {p.suffix!r}; use one of {', '.join(_SUFFIXES)}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p), device="cpu")
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickled objects refused by weights_only, ...
        raise ConfigError(f"{key}: cannot read weights file {str(p)!r} ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"{key}: weights file {str(p)!r} does not hold a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}


def _candidates(sd: Dict[str, torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
    bare = {k: v for k, v in sd.items() if not k.startswith(("fc.", "classification_head."))}
    return [sd, {f"net.{k}": v for k, v in sd.items()}, {f"net.{k}": v for k, v in bare.items()}]


def load_weights(module: nn.Module, path: str | Path, key: str = "model.image_encoder.weights") -> None:
    """Load ``path`` into ``module`` strictly.

    Raises:
        ConfigError: file missing/unreadable, or keys/shapes do not match (the message names
            the file and the first missing / unexpected / mis-shaped keys).
    """
    own = module.state_dict()
    best = min(_candidates(read_state_dict(path, key)), key=lambda c: len(set(own) ^ set(c)))
    missing = [k for k in own if k not in best]
    unexpected = [k for k in best if k not in own]
    shapes = [f"{k} {tuple(best[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in best and best[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:3]}")
        raise ConfigError(
            f"{key}: weights file {str(path)!r} does not fit this encoder ({'; '.join(parts)}); "
            "check the encoder name/width/spatial_dims it was saved from"
        )
    module.load_state_dict(best, strict=True)

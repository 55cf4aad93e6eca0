"""The checkpoint file format, as far as reading a model needs it (library core).

A checkpoint is a folder holding ``model.safetensors`` (the weights) and ``state.pt``
(optimizer, RNG, step; written and resumed by :mod:`clinfusion.training.checkpoint`).
Loading a trained model for inference needs only :func:`resolve_checkpoint` and
:func:`load_weights`, so they live here and :mod:`clinfusion.models.io` imports nothing
from the training layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_model
from torch import nn

from clinfusion.errors import RunDirError

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def resolve_checkpoint(directory: str | os.PathLike) -> Optional[Path]:
    """The folder to load for ``directory`` (falls back to ``<dir>.old`` after a kill
    between the two renames); None when neither holds a checkpoint."""
    final = Path(directory)
    for cand in (final, final.with_name(f"{final.name}.old")):
        if (cand / MODEL_FILE).is_file() and (cand / STATE_FILE).is_file():
            return cand
    return None


def load_weights(file: str | os.PathLike, model: nn.Module, map_location: str | torch.device = "cpu") -> None:
    """``model.safetensors`` -> ``model`` (strict); RunDirError naming the file otherwise."""
    try:
        missing, unexpected = load_model(model, str(file), strict=False, device=str(map_location))
    except Exception as exc:  # header/size corruption, truncated file
        raise RunDirError(f"checkpoint file {str(file)!r} is corrupt or incomplete ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}): use another checkpoint") from None
    if missing or unexpected:
        raise RunDirError(f"checkpoint file {str(file)!r} does not match the model (missing {sorted(missing)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]}): check model.* settings against the run's config.yaml")

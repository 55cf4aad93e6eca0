"""Load a pretrained run directory: ``load_pretrained(run_dir) -> (cfg, preprocessor, model)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple

import torch

from clinfusion.errors import RunDirError
from clinfusion.models.checkpoint_files import MODEL_FILE, load_weights, resolve_checkpoint
from clinfusion.models.multimodal import MultimodalModel

REQUIRED = ("config.yaml", "preprocessing.json")
CHECKPOINTS = ("best", "last")  # preferred order


def pretrained_weights(run_dir: str | os.PathLike, checkpoint: Optional[str] = None) -> Path:
    """Path of the ``model.safetensors`` to use (``best``, else ``last``, unless named)."""
    names = (checkpoint,) if checkpoint else CHECKPOINTS
    for name in names:
        ck = resolve_checkpoint(Path(run_dir) / "checkpoints" / name)
        if ck is not None:
            return ck / MODEL_FILE
    raise RunDirError(f"pretrained run {str(run_dir)!r} has no checkpoints/{' or checkpoints/'.join(names)}/{MODEL_FILE}: "
                      f"pass a run directory written by `clinfusion pretrain`")


def build_model(cfg: Any, schema: Any) -> MultimodalModel:
    """The :class:`MultimodalModel` a run's config describes (untrained)."""
    return MultimodalModel(cfg.model, cfg.image.spatial_dims, cfg.image.channels, schema, cfg.image.size,
                           cfg.pretrain.temperature, cfg.pretrain.max_logit_scale)


def load_pretrained(run_dir: str | os.PathLike, checkpoint: Optional[str] = None,
                    map_location: str | torch.device = "cpu") -> Tuple[Any, Any, MultimodalModel]:
    """Load ``(RunConfig, TabularPreprocessor, MultimodalModel)`` from a pretraining run.

    Args:
        run_dir: folder written by :func:`clinfusion.training.pretrain.run_pretrain`.
        checkpoint: ``"best"`` / ``"last"``; default: best if present, else last.
        map_location: device of the loaded weights.

    The model is returned in eval mode.

    Raises:
        RunDirError: the folder is missing or incomplete (lists every missing item), or a
            checkpoint file is corrupt.
    """
    from clinfusion.config import load_config
    from clinfusion.datasets.preprocess import TabularPreprocessor

    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"pretrained run directory {str(path)!r} not found: pass a folder written by `clinfusion pretrain`")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    try:
        weights = pretrained_weights(path, checkpoint)
    except RunDirError:
        weights = None
        missing.append("checkpoints/best or checkpoints/last (model.safetensors + state.pt)")
    if missing:
        raise RunDirError(f"pretrained run directory {str(path)!r} is incomplete: missing {', '.join(missing)}; "
                          f"re-run `clinfusion pretrain` (or --resume it)")
    cfg = load_config(path / "config.yaml")
    pre = TabularPreprocessor.load(path / "preprocessing.json")
    model = build_model(cfg, pre.schema)
    load_weights(weights, model, map_location)
    return cfg, pre, model.to(map_location).eval()

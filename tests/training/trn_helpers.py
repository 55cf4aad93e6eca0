"""Helpers for the training tests: tiny-model overrides and a config on the synthetic cohort."""

from __future__ import annotations

from typing import List

from clinfusion.config import load_config
from clinfusion.config.schema import RunConfig

TINY = [
    "model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4",
    "model.tabular_encoder.hidden_size=16", "model.tabular_encoder.num_layers=1",
    "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=32",
    "model.tabular_encoder.dropout=0.0",
    "model.fusion.dim=16", "model.projection_dim=16",
    "pretrain.epochs=2", "pretrain.batch_size=8", "pretrain.progress=false", "pretrain.log_every=1",
    "pretrain.warmup_epochs=0.5", "split.val_fraction=0.25", "split.test_fraction=0.0", "device=cpu",
    "image.augment.rotate_degrees=0",
]


def tiny_config(synthetic, extra: List[str] = ()) -> RunConfig:
    """RunConfig for ``synthetic`` (a SyntheticCohort) with tiny models, plus ``extra`` overrides."""
    return load_config(None, list(synthetic.overrides) + TINY + list(extra))

"""Shared fixtures for the training tests: one synthetic cohort and a tiny config."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

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


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("synth"), n_patients=20, images_per_patient=2, size=16,
                                 missing_image_rate=0.1, missing_value_rate=0.05, seed=0)


def tiny_config(synthetic, extra: List[str] = ()) -> RunConfig:
    return load_config(None, list(synthetic.overrides) + TINY + list(extra))


@pytest.fixture
def tiny_cfg(synthetic) -> RunConfig:
    return tiny_config(synthetic)

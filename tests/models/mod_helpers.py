"""Hand-made tiny schema, config and batches for the model tests (batch layout of
:mod:`clinfusion.datasets.batch`)."""

from __future__ import annotations

from typing import Dict

import torch

from clinfusion.config.schema import ModelConfig, PretrainConfig
from clinfusion.encoders.schema import TableSchema

SCHEMA = TableSchema(numeric=["age", "marker"], categorical=["sex"], cat_cardinalities=[3])


def tiny_model_cfg(fusion: str = "concat") -> ModelConfig:
    return ModelConfig.model_validate({
        "image_encoder": {"name": "cnn_tiny", "width": 4},
        "tabular_encoder": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "dropout": 0.0},
        "fusion": {"name": fusion, "dim": 12, "num_heads": 2},
        "projection_dim": 8,
    })


def fake_batch(b: int = 6, seed: int = 0, size: int = 16) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, 2, dtype=torch.bool)
    mask[0, 0] = False  # row 0: no image
    mask[1, 1] = False  # row 1: no table
    image = torch.rand(b, 1, size, size, generator=g)
    image[0] = 0
    num_missing = torch.zeros(b, 2, dtype=torch.bool)
    num_missing[1] = True
    return {
        "id": [f"s{i}" for i in range(b)], "patient": [f"p{i}" for i in range(b)],
        "image": image, "image_view2": torch.rand(b, 1, size, size, generator=g),
        "num": torch.randn(b, 2, generator=g).masked_fill(num_missing, 0.0), "num_missing": num_missing,
        "cat": torch.randint(1, 3, (b, 1), generator=g), "cat_missing": torch.zeros(b, 1, dtype=torch.bool),
        "omics": torch.zeros(b, 0), "omics_missing": torch.zeros(b, 0, dtype=torch.bool),
        "modality_mask": mask,
        "label": torch.zeros(b, 1), "label_index": torch.zeros(b, dtype=torch.long), "has_label": torch.ones(b, dtype=torch.bool),
    }

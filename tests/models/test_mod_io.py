"""load_pretrained: round trip of a run directory, incomplete folders listed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinfusion.config import RunConfig, save_config
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.errors import RunDirError
from clinfusion.models.io import build_model, load_pretrained
from clinfusion.training.checkpoint import save_checkpoint

from mod_helpers import fake_batch, tiny_model_cfg


def _write_run(path):
    cfg = RunConfig(model=tiny_model_cfg(), image={"size": [16, 16]})
    pre = TabularPreprocessor()
    pre.numeric, pre.categorical, pre.vocab = ["age", "marker"], ["sex"], {"sex": ["F", "M"]}
    pre.num_mean, pre.num_std, pre.fitted = np.zeros(2), np.ones(2), True
    path.mkdir()
    save_config(cfg, path / "config.yaml")
    pre.save(path / "preprocessing.json")
    torch.manual_seed(1)
    model = build_model(cfg, pre.schema)
    save_checkpoint(path / "checkpoints" / "last", model, step=3)
    return model


def test_round_trip(tmp_path):
    saved = _write_run(tmp_path / "run").eval()
    cfg, pre, model = load_pretrained(tmp_path / "run")
    assert cfg.model.fusion.dim == 12 and pre.schema.cat_cardinalities == [3]
    assert not model.training
    batch = fake_batch()
    assert torch.equal(model(batch)["fused"], saved(batch)["fused"])


def test_incomplete_run_lists_everything_missing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(RunDirError) as err:
        load_pretrained(run)
    msg = str(err.value)
    assert "is incomplete: missing preprocessing.json, checkpoints/best or checkpoints/last" in msg
    assert "config.yaml" not in msg.split("missing")[1]
    with pytest.raises(RunDirError, match="not found"):
        load_pretrained(tmp_path / "nowhere")

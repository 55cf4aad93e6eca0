"""Shared tiny fixtures: a synthetic cohort and one fine-tuned run reused by several tests."""

import pytest

from clinfusion.config import load_config

TINY = [
    "model.image_encoder.name=cnn_tiny",
    "model.tabular_encoder.hidden_size=16", "model.tabular_encoder.num_layers=1",
    "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=32",
    "model.fusion.dim=16", "model.projection_dim=16",
    "finetune.epochs=2", "finetune.batch_size=16", "finetune.mlp_hidden=8",
    "finetune.lightgbm.n_estimators=15", "finetune.lightgbm.min_child_samples=3",
    "finetune.lightgbm.num_threads=1",
    "split.val_fraction=0.25", "split.test_fraction=0.3",
    "evaluation.bootstrap=20", "evaluation.subgroups=[sex, age]", "evaluation.age_bands=[50, 70]",
    "device=cpu",
]


@pytest.fixture(scope="session")
def tiny_overrides():
    """The tiny model / fine-tuning overrides, for a test that builds its own cohort."""
    return list(TINY)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("dn_cohort"), n_patients=30, images_per_patient=2,
                                 size=16, seed=3)


def make_cfg(synth, *extra):
    return load_config(None, list(synth.overrides) + TINY + list(extra))


@pytest.fixture(scope="session")
def dn_cfg(synth):
    """``dn_cfg(*overrides) -> RunConfig`` on the synthetic cohort with the tiny settings."""
    return lambda *extra: make_cfg(synth, *extra)


@pytest.fixture(scope="session")
def finetuned(synth, tmp_path_factory):
    """Every head and baseline at two label fractions, from scratch (no pretrained run)."""
    from clinfusion.downstream.finetune import run_finetune

    cfg = make_cfg(synth, "finetune.heads=[linear, linear_image, linear_table, linear_concat, mlp, full, lightgbm]",
                   "finetune.baselines=[tabular_lgbm, image_only, fused_scratch]",
                   "finetune.label_fractions=[0.6, 1.0]")
    out = tmp_path_factory.mktemp("dn_runs") / "ft"
    return run_finetune(cfg, None, out, show=False), cfg

"""Pretraining with the fusion terms (ITM, masked_fused) and MAE on: logged per epoch."""

from __future__ import annotations

import csv

from clinfusion.training.pretrain import run_pretrain

from trn_helpers import tiny_config


def test_itm_and_masked_fused_are_logged_beside_retrieval(synthetic, tmp_path):
    out = tmp_path / "run"
    run_pretrain(tiny_config(synthetic, ["pretrain.losses.itm=1.0", "pretrain.losses.masked_fused=1.0",
                                         "pretrain.losses.simclr=0", "model.modality_dropout=0.3"]), out)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    val = [r for r in rows if r["split"] == "val"]
    assert len(val) == 2 and all(r["itm_loss"] and r["masked_fused_loss"] and r["itm_acc"] for r in val)
    assert all(0.0 <= float(r["itm_acc"]) <= 1.0 for r in rows if r["itm_acc"])
    itm = [r for r in csv.DictReader(open(out / "retrieval.csv")) if r["direction"] == "itm"]
    assert [r["epoch"] for r in itm] == ["1", "2"]
    assert all(0.0 <= float(r["recall"]) <= 1.0 and float(r["chance"]) == 2 / 3 for r in itm)


def test_mae_pretraining_runs_in_3d(tmp_path):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    synth = make_synthetic_cohort(tmp_path / "c3", n_patients=12, images_per_patient=1, spatial_dims=3, size=8, seed=1)
    out = tmp_path / "run"
    run_pretrain(tiny_config(synth, ["model.image_encoder.name=vit_tiny", "model.image_encoder.width=16",
                                     "pretrain.losses.mae=1.0", "pretrain.losses.simclr=0", "pretrain.losses.scarf=0",
                                     "pretrain.losses.clip=0", "pretrain.mae.decoder_dim=16",
                                     "pretrain.mae.decoder_heads=2", "pretrain.epochs=1"]), out)
    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["split"] == "train"]
    assert rows and all(float(r["mae_loss"]) > 0 for r in rows) and not any(r["clip_loss"] for r in rows)

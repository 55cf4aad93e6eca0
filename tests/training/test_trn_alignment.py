"""Pretraining learns an image<->table alignment: held-out retrieval beats chance.

The synthetic cohort's clinical column ``density`` sets the brightness of a square in the
image (label-independent), so image and table share a continuous attribute: a model that
aligns them ranks candidates of similar density first, well above chance k/N.
"""

from __future__ import annotations

import csv


from clinfusion.config import load_config
from clinfusion.training.pretrain import run_pretrain

from trn_helpers import TINY


def test_retrieval_recall_at_10_above_chance(tmp_path):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    syn = make_synthetic_cohort(tmp_path / "synth", n_patients=60, images_per_patient=2, size=16, seed=1)
    overrides = list(syn.overrides) + TINY + [
        "cohort.label_column=null", "split.val_fraction=0.34",
        "pretrain.epochs=30", "pretrain.batch_size=16", "pretrain.lr=0.003", "pretrain.log_every=50",
        "model.image_encoder.width=8", "pretrain.retrieval_every=30",
        "pretrain.losses.simclr=0.0", "pretrain.losses.scarf=0.0", "model.modality_dropout=0.0",
    ]
    out = run_pretrain(load_config(None, overrides), tmp_path / "run")
    rows = [r for r in csv.DictReader(open(out / "retrieval.csv")) if r["epoch"] == "30" and r["k"] == "10"]
    assert len(rows) == 2
    for r in rows:
        assert int(r["n"]) >= 30
        assert float(r["recall"]) > float(r["chance"]) + 0.1, r

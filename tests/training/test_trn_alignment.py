"""Pretraining learns an image<->table alignment: held-out retrieval beats chance.

The synthetic cohort's image pattern and clinical marker are independent by design, so a
copy of its table gets a clinical column ``pattern_flag`` that reports the planted image
pattern: image and table then share one binary attribute, and a model that aligns them can
rank the matching half of the candidates first (recall@k up to ~2k/N versus chance k/N).
"""

from __future__ import annotations

import csv

import pandas as pd

from clinfusion.config import load_config
from clinfusion.training.pretrain import run_pretrain

from trn_helpers import TINY


def test_retrieval_recall_at_10_above_chance(tmp_path):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    syn = make_synthetic_cohort(tmp_path / "synth", n_patients=60, images_per_patient=2, size=16, seed=1)
    frame = pd.read_csv(syn.table)
    frame["pattern_flag"] = frame["id"].isin(syn.planted["pattern_ids"]).astype(float)
    table = tmp_path / "synth" / "cohort_flag.csv"
    frame.to_csv(table, index=False)
    overrides = list(syn.overrides) + TINY + [
        f"cohort.table={table}", "cohort.label_column=null", "split.val_fraction=0.34",
        "pretrain.epochs=12", "pretrain.batch_size=16", "pretrain.lr=0.005", "pretrain.log_every=50",
        "model.image_encoder.width=8", "pretrain.retrieval_every=12",
        "pretrain.losses.simclr=0.0", "pretrain.losses.scarf=0.0", "model.modality_dropout=0.0",
    ]
    out = run_pretrain(load_config(None, overrides), tmp_path / "run")
    rows = [r for r in csv.DictReader(open(out / "retrieval.csv")) if r["epoch"] == "12" and r["k"] == "10"]
    assert len(rows) == 2
    for r in rows:
        assert int(r["n"]) >= 30
        assert float(r["recall"]) > float(r["chance"]) + 0.1, r

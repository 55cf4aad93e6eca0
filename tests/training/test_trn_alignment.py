"""Pretraining learns an image<->table alignment that transfers to a new cohort.

The synthetic cohort's clinical column ``density`` sets the brightness of a strip in the
image (label-free) and ``site`` shifts the image intensity, so image and table share
continuous attributes: a model that aligns them ranks candidates of similar density first,
well above chance k/N, on held-out rows and on an external cohort drawn with another seed.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from clinfusion.config import load_config
from clinfusion.training.embed import run_embed
from clinfusion.training.pretrain import run_pretrain

from trn_helpers import TINY

ALIGN = [
    "cohort.label_column=null", "cohort.exclude=[label]", "split.val_fraction=0.34",
    "pretrain.epochs=30", "pretrain.batch_size=16", "pretrain.log_every=50",
    "model.image_encoder.width=8", "pretrain.retrieval_every=30",
    "pretrain.losses.simclr=0.0", "pretrain.losses.scarf=0.0", "model.modality_dropout=0.0",
]


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """A run pretrained on one cohort (seed 1), an untrained twin (lr ~ 0), an external cohort (seed 7)."""
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    root = tmp_path_factory.mktemp("align")
    syn = make_synthetic_cohort(root / "synth", n_patients=60, images_per_patient=2, size=16, seed=1)
    run = run_pretrain(load_config(None, list(syn.overrides) + TINY + ALIGN + ["pretrain.lr=0.003"]), root / "run")
    untrained = run_pretrain(load_config(None, list(syn.overrides) + TINY + ALIGN + [
        "pretrain.lr=1e-12", "pretrain.epochs=1", "pretrain.retrieval_every=1"]), root / "untrained")
    external = make_synthetic_cohort(root / "external", n_patients=30, images_per_patient=2, size=16, seed=7)
    return run, untrained, external


def test_retrieval_recall_at_10_above_chance(aligned):
    out = aligned[0]
    features = json.loads((out / "preprocessing.json").read_text())
    assert "label" not in features["numeric"] + features["categorical"]  # no label leak into the table
    rows = [r for r in csv.DictReader(open(out / "retrieval.csv")) if r["epoch"] == "30" and r["k"] == "10"]
    assert len(rows) == 2
    for r in rows:
        assert int(r["n"]) >= 30
        assert float(r["recall"]) > float(r["chance"]) + 0.1, r


def _recall_image_to_table(parquet, k: int) -> float:
    """Share of images whose own record is among the k records of highest cosine similarity."""
    frame = pd.read_parquet(parquet).dropna(subset=["image_proj", "table_proj"])
    img, tab = np.stack(frame["image_proj"]), np.stack(frame["table_proj"])
    assert np.allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5) and np.allclose(np.linalg.norm(tab, axis=1), 1.0,
                                                                                      atol=1e-5)
    sim = img @ tab.T
    rank = (sim > np.diag(sim)[:, None]).sum(1)  # records scoring above the true one
    return float((rank < k).mean())


def test_external_cohort_retrieval_from_parquet(aligned, tmp_path):
    run, untrained, external = aligned
    trained = _recall_image_to_table(run_embed(run, str(external.table), tmp_path / "ext.parquet"), k=10)
    random = _recall_image_to_table(run_embed(untrained, str(external.table), tmp_path / "ext0.parquet"), k=10)
    chance = 10 / 60
    assert random < chance + 0.15, random  # an untrained model is near chance
    assert trained > chance + 0.2 and trained > random + 0.15, (trained, random)

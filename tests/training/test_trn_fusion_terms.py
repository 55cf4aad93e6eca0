"""Pretraining with the fusion terms (ITM, masked_fused) and MAE on: logged per epoch."""

from __future__ import annotations

import csv

import pytest
import torch

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
    assert all(float(r["chance"]) == 2 / 3 for r in itm)
    # the logged value of the last epoch is the saved task's ITM accuracy on the validation pairs ...
    from clinfusion.training.pretrain import itm_accuracy

    task, pairs = _saved_task_and_pairs(out)
    assert float(itm[-1]["recall"]) == pytest.approx(itm_accuracy(task, pairs), abs=1e-6)
    # ... and that accuracy is the one computed by hand. The tiny run is degenerate for this check: its head
    # answers "no match" to every pair (2/3) and its projections tie, so any negative is "hardest". Random
    # projections make the hardest negative matter, and a random head with its bias at the median score of
    # the triples answers "match" to about half of them
    torch.manual_seed(0)
    pairs = dict(pairs, image_proj=torch.randn_like(pairs["image_proj"]),
                 table_proj=torch.randn_like(pairs["table_proj"]))
    triples = _hardest_triples(pairs)
    fused = _fused(task, pairs, triples)
    torch.nn.init.normal_(task.itm.head.weight)
    with torch.no_grad():
        task.itm.head.bias.zero_()
        score = task.itm.head(fused)
        task.itm.head.bias[1] = -float((score[:, 1] - score[:, 0]).median()) + 1e-4
        answer = task.itm.head(fused).argmax(dim=1)
    assert 0 < int(answer.sum()) < len(triples)
    by_hand = float((answer == torch.tensor([m for _, _, m in triples])).float().mean())
    assert itm_accuracy(task, pairs) == pytest.approx(by_hand, abs=1e-6)


def _saved_task_and_pairs(run_dir):
    from clinfusion.config import load_config
    from clinfusion.datasets.builder import build_loader
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.checkpoint import load_checkpoint
    from clinfusion.training.pretrain import build_datasets, embed_pairs

    cfg = load_config(run_dir / "config.yaml")
    _, pre, _, val_ds = build_datasets(cfg, run_dir, resume=True, write=False)
    task = PretrainTask(build_model(cfg, pre.schema), cfg.pretrain, cfg.model.modality_dropout)
    state = load_checkpoint(run_dir / "checkpoints" / "last", task.model)
    task.load_state_dict(state["extra"]["task_state"], strict=False)
    task.eval()
    return task, embed_pairs(task.model, build_loader(val_ds, 8, shuffle=False), torch.device("cpu"))


def _hardest_triples(pairs):
    """For each validation pair i: (i, i, match), (i, hardest table of another patient, no match) and
    (hardest image of another patient, i, no match), by cosine similarity of the CLIP projections."""
    import torch.nn.functional as F

    img, tab = F.normalize(pairs["image_proj"], dim=-1), F.normalize(pairs["table_proj"], dim=-1)
    patients = pairs["patient"]
    triples = []
    for i in range(len(patients)):
        others = [j for j in range(len(patients)) if patients[j] != patients[i]]
        j = max(others, key=lambda m: float(img[i] @ tab[m]))
        k = max(others, key=lambda m: float(tab[i] @ img[m]))
        triples += [(i, i, 1), (i, j, 0), (k, i, 0)]
    assert len(triples) >= 3 * 4  # enough validation pairs for the check to mean something
    return triples


def _fused(task, pairs, triples):
    """The fusion of each (image row, table row) pair, one at a time: ``[len(triples), F]``."""
    with torch.no_grad():
        return torch.cat([task.model.fusion(pairs["image_emb"][a:a + 1], pairs["table_emb"][b:b + 1],
                                            torch.ones(1, 2, dtype=torch.bool)) for a, b, _ in triples])


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

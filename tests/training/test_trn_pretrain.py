"""``run_pretrain`` / ``run_embed`` end to end on the synthetic cohort (tiny models)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from clinfusion.errors import ConfigError, DataError, RunDirError
from clinfusion.training.embed import run_embed
from clinfusion.training.pretrain import run_pretrain

from trn_helpers import tiny_config


@pytest.fixture(scope="module")
def pretrained(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "run"
    run_pretrain(tiny_config(synthetic, ["pretrain.grad_checkpointing=true"]), out)
    return out


def test_run_dir_contract(pretrained, synthetic):
    for name in ("config.yaml", "splits.csv", "preprocessing.json", "metrics.csv", "retrieval.csv",
                 "checkpoints/last/model.safetensors", "checkpoints/best/state.pt", "tensorboard"):
        assert (pretrained / name).exists(), name
    splits = pd.read_csv(pretrained / "splits.csv")
    assert len(splits) == 40 and set(splits["split"]) == {"train", "val"}
    assert splits.groupby("patient")["split"].nunique().max() == 1  # grouped by patient
    rows = list(csv.DictReader(open(pretrained / "retrieval.csv")))
    assert {r["epoch"] for r in rows} == {"1", "2"}
    for r in rows:  # chance beside each recall, k / n
        assert float(r["chance"]) == pytest.approx(min(1.0, int(r["k"]) / int(r["n"])))
    import json

    schema = json.loads((pretrained / "preprocessing.json").read_text())
    assert "label" not in schema["numeric"] + schema["categorical"]  # labels never reach an encoder


def test_existing_run_without_overwrite(pretrained, synthetic):
    with pytest.raises(RunDirError, match="exists: pass --overwrite to replace it or --resume to continue"):
        run_pretrain(tiny_config(synthetic), pretrained)


def test_embed_parquet_one_row_per_sample(pretrained, synthetic, tmp_path):
    out = run_embed(pretrained, None, tmp_path / "emb.parquet")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["id", "patient", "image_emb", "table_emb", "fused_emb", "image_proj", "table_proj"]
    assert len(frame) == 40 and frame["id"].is_unique
    assert len(frame["fused_emb"].iloc[0]) == 16  # model.fusion.dim
    assert len(frame["table_emb"].iloc[0]) == 16  # tabular hidden size
    table = pd.read_csv(synthetic.table)
    no_image = set(table.loc[table["image"].isna(), "id"])
    assert no_image and set(frame.loc[frame["image_emb"].isna(), "id"]) == no_image
    assert set(frame.loc[frame["image_proj"].isna(), "id"]) == no_image
    proj = np.stack(frame["table_proj"].dropna())
    assert proj.shape[1] == 16 and np.allclose(np.linalg.norm(proj, axis=1), 1.0, atol=1e-5)  # unit norm, CLIP space


def test_batch_size_larger_than_training_set(synthetic, tmp_path):
    cfg = tiny_config(synthetic, ["pretrain.batch_size=64"])
    with pytest.raises(ConfigError, match=r"pretrain\.batch_size=64 is larger than the training set \(\d+ rows\)"):
        run_pretrain(cfg, tmp_path / "run")


def test_a_config_error_found_after_the_folder_was_made_leaves_no_folder(synthetic, tmp_path):
    """The batch size (checked once the split is known) and the loss weights (checked when the model is
    built) stop the run after its folder was made: the folder goes, so the corrected command needs no
    --overwrite."""
    for extra, match in ((["pretrain.batch_size=64"], "larger than the training set"),
                         ([f"pretrain.losses.{t}=0" for t in ("clip", "simclr", "scarf", "masked_features")],
                          "every weight is 0")):
        with pytest.raises(ConfigError, match=match):
            run_pretrain(tiny_config(synthetic, extra), tmp_path / "run")
        assert not (tmp_path / "run").exists()


def test_3d_config_on_2d_images_is_one_data_error(synthetic, tmp_path):
    cfg = tiny_config(synthetic, ["image.spatial_dims=3", "image.size=[16,16,16]"])
    with pytest.raises(DataError) as err:
        run_pretrain(cfg, tmp_path / "run")
    msg = str(err.value)
    assert "\n" not in msg and ".png" in msg


def test_resume_refuses_changed_settings_and_leaves_the_run_usable(synthetic, tmp_path, capsys):
    """--resume with another model width: one line, the run folder untouched and still loadable; --resume
    with fewer epochs than done: says nothing is left and the stored config keeps the run's epochs."""
    from clinfusion.models.io import load_pretrained

    run = tmp_path / "run"
    run_pretrain(tiny_config(synthetic, ["pretrain.epochs=1"]), run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    changed = tiny_config(synthetic, ["pretrain.epochs=2", "model.tabular_encoder.hidden_size=32", "pretrain.lr=0.01"])
    with pytest.raises(ConfigError, match=r"--resume .*: model.tabular_encoder.hidden_size: run 16, this config 32 "
                                          r"\(and 1 more\): resume with the run's settings"):
        run_pretrain(changed, run, resume=True)
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    load_pretrained(run)  # its checkpoint still loads

    capsys.readouterr()
    run_pretrain(tiny_config(synthetic, ["pretrain.epochs=1", "pretrain.progress=false"]), run, resume=True)
    assert "has finished 1 epoch(s) of pretrain.epochs=1: nothing to train" in capsys.readouterr().out
    run_pretrain(tiny_config(synthetic, ["pretrain.epochs=2"]), run, resume=True)  # more epochs: allowed
    assert [r["epoch"] for r in csv.DictReader(open(run / "retrieval.csv"))][-1] == "2"
    run_pretrain(tiny_config(synthetic, ["pretrain.epochs=1"]), run, resume=True)
    assert "epochs: 2" in (run / "config.yaml").read_text()  # not rewritten to the smaller count

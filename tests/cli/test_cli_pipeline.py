"""End to end through the real CLI on a tiny synthetic cohort:
pretrain -> embed -> finetune -> evaluate -> predict -> explain."""

import json

import pandas as pd
import pytest

from clinfusion.cli.main import main
from clinfusion.datasets.synthetic import make_synthetic_cohort

TINY = [
    "model.image_encoder.name=cnn_tiny", "model.tabular_encoder.hidden_size=16",
    "model.tabular_encoder.num_layers=1", "model.tabular_encoder.num_heads=2",
    "model.tabular_encoder.intermediate_size=32", "model.fusion.dim=16", "model.projection_dim=16",
    "pretrain.epochs=1", "pretrain.batch_size=8", "pretrain.progress=false",
    "finetune.heads=[linear, lightgbm]", "finetune.baselines=[tabular_lgbm]", "finetune.epochs=2",
    "finetune.batch_size=8", "finetune.lightgbm.n_estimators=20", "evaluation.bootstrap=20",
    "evaluation.subgroups=[sex]", "explain.methods=[integrated_gradients, tabular_ig]",
    "explain.ig_steps=4", "explain.max_samples=2",
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    syn = make_synthetic_cohort(root / "cohort", n_patients=16, images_per_patient=2, size=16, seed=2)  # positives in every split
    cfg = root / "cfg.yaml"
    cfg.write_text("seed: 0\n")
    args = [*syn.overrides, "image.size=[16, 16]", *TINY]
    runs = {"root": root, "syn": syn}
    assert main(["pretrain", str(cfg), *args, "--out", str(root / "pre")]) == 0
    runs["pre"] = root / "pre"
    assert main(["finetune", str(cfg), *args, "--pretrained", str(root / "pre"), "--out", str(root / "ft")]) == 0
    runs["ft"] = root / "ft"
    return runs


def test_pretrain_run_directory_contract(pipeline):
    pre = pipeline["pre"]
    for name in ("config.yaml", "splits.csv", "preprocessing.json", "metrics.csv"):
        assert (pre / name).is_file(), name
    assert (pre / "checkpoints" / "last" / "model.safetensors").is_file()
    cfg_text = (pre / "config.yaml").read_text()
    assert "cnn_tiny" in cfg_text  # the resolved config holds the overrides


def test_embed_writes_one_row_per_sample(pipeline):
    out = pipeline["root"] / "emb.parquet"
    assert main(["embed", str(pipeline["pre"]), "--cohort", str(pipeline["syn"].table), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    n = len(pd.read_csv(pipeline["syn"].table))
    assert len(df) == n
    for col in ("id", "patient", "image_emb", "table_emb", "fused_emb"):
        assert col in df.columns
    assert len(df["fused_emb"].iloc[0]) == 16


def test_finetune_outputs(pipeline):
    ft = pipeline["ft"]
    metrics = json.loads((ft / "metrics.json").read_text())
    assert "auroc" in metrics and "auroc_ci_low" in metrics and "auroc_ci_high" in metrics
    assert metrics["auroc_ci_low"] <= metrics["auroc"] <= metrics["auroc_ci_high"]
    preds = pd.read_csv(ft / "predictions.csv")
    assert {"id", "patient"} <= set(preds.columns)
    assert (ft / "report.html").is_file()


def test_evaluate_and_predict(pipeline):
    ft, root = pipeline["ft"], pipeline["root"]
    assert main(["evaluate", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "ev")]) == 0
    m = json.loads((root / "ev" / "metrics.json").read_text())
    assert 0.0 <= m["auroc"] <= 1.0
    assert main(["predict", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "p.csv")]) == 0
    assert len(pd.read_csv(root / "p.csv")) == len(pd.read_csv(pipeline["syn"].table))
    # an existing output is never overwritten without --overwrite
    assert main(["predict", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "p.csv")]) == 2


def test_explain_writes_report(pipeline):
    ft, root = pipeline["ft"], pipeline["root"]
    assert main(["explain", str(ft), "--out", str(root / "xp")]) == 0
    assert (root / "xp" / "report.html").is_file()
    assert (root / "xp" / "tabular.csv").is_file()
    assert main(["explain", str(ft), "--out", str(root / "xp")]) == 2  # exists, no --overwrite

"""End to end through the real CLI on a tiny synthetic cohort:
pretrain -> embed -> finetune -> evaluate -> predict -> explain."""

import json
from pathlib import Path

import numpy as np
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
    # a new cohort without labels embeds too (images paths absolute: the copy lives elsewhere), to the same vectors
    table = pd.read_csv(pipeline["syn"].table)
    table["image"] = [str(pipeline["syn"].table.parent / p) for p in table["image"]]
    unlabelled = pipeline["root"] / "unlabelled.csv"
    table.drop(columns=["label"]).to_csv(unlabelled, index=False)
    out2 = pipeline["root"] / "emb_unlabelled.parquet"
    assert main(["embed", str(pipeline["pre"]), "--cohort", str(unlabelled), "--out", str(out2)]) == 0
    df2 = pd.read_parquet(out2)
    assert list(df2["id"]) == list(df["id"])
    np.testing.assert_allclose(np.stack(df2["fused_emb"]), np.stack(df["fused_emb"]), atol=1e-6)


def test_finetune_outputs(pipeline):
    ft = pipeline["ft"]
    metrics = json.loads((ft / "metrics.json").read_text())
    assert "auroc" in metrics and "auroc_ci_low" in metrics and "auroc_ci_high" in metrics
    assert metrics["auroc_ci_low"] <= metrics["auroc"] <= metrics["auroc_ci_high"]
    preds = pd.read_csv(ft / "predictions.csv")
    assert {"id", "patient"} <= set(preds.columns)
    assert (ft / "report.html").is_file()


def test_evaluate_and_predict(pipeline, capsys):
    ft, root = pipeline["ft"], pipeline["root"]
    assert main(["evaluate", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "ev")]) == 0
    m = json.loads((root / "ev" / "metrics.json").read_text())
    assert f"AUROC {m['auroc']:.3f} [{m['auroc_ci_low']:.3f}, {m['auroc_ci_high']:.3f}]" in capsys.readouterr().out
    assert main(["predict", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "p.csv")]) == 0
    table, pred = pd.read_csv(pipeline["syn"].table), pd.read_csv(root / "p.csv")
    assert len(pred) == len(table)
    # evaluate's metrics are those of predict's probabilities against the table's labels (scored by sklearn)
    from sklearn.metrics import accuracy_score, roc_auc_score

    both = table.merge(pred, on="id", validate="one_to_one")
    assert m["n"] == len(both) == len(table)
    assert m["auroc"] == pytest.approx(roc_auc_score(both["label"], both["prob_1"]), abs=1e-9)
    assert m["accuracy"] == pytest.approx(accuracy_score(both["label"], both["predicted"]), abs=1e-9)
    # the whole table includes the run's training and validation rows, and evaluate says how many
    seen = pd.read_csv(ft / "splits.csv", dtype=str).query("split in ['train', 'val']")
    assert 0 < m["rows_seen_in_training"] == len(seen) < len(table)
    # an existing output is never overwritten without --overwrite
    assert main(["predict", str(ft), "--cohort", str(pipeline["syn"].table), "--out", str(root / "p.csv")]) == 2
    # nor the table it reads, even with --overwrite, nor a folder written as a file
    table_bytes = Path(pipeline["syn"].table).read_bytes()
    assert main(["predict", str(ft), "--out", str(pipeline["syn"].table), "--overwrite"]) == 2
    assert main(["embed", str(pipeline["pre"]), "--out", str(root / "newdir") + "/"]) == 2
    assert Path(pipeline["syn"].table).read_bytes() == table_bytes and not (root / "newdir").exists()


def test_explain_writes_report(pipeline):
    ft, root = pipeline["ft"], pipeline["root"]
    assert main(["explain", str(ft), "--out", str(root / "xp")]) == 0
    assert (root / "xp" / "report.html").is_file()
    assert (root / "xp" / "tabular.csv").is_file()
    assert main(["explain", str(ft), "--out", str(root / "xp")]) == 2  # exists, no --overwrite


def test_head_option_uses_another_saved_head(pipeline, capsys):
    """--head: evaluate / predict / explain a saved head other than the one chosen on validation;
    an unknown head is one line naming the saved ones."""
    ft, root, table = pipeline["ft"], pipeline["root"], str(pipeline["syn"].table)
    meta = json.loads((ft / "classifier" / "meta.json").read_text())
    other = [h for h in meta["heads"] if h != meta["primary"]][0]
    for head in (None, other):
        tag = head or "primary"
        extra = ["--head", head] if head else []
        assert main(["predict", str(ft), "--cohort", table, "--out", str(root / f"p_{tag}.csv")] + extra) == 0
        assert main(["evaluate", str(ft), "--cohort", table, "--out", str(root / f"ev_{tag}")] + extra) == 0
        assert main(["explain", str(ft), "--out", str(root / f"xp_{tag}"), "--methods", "tabular_ig"] + extra) == 0
    p0, p1 = pd.read_csv(root / "p_primary.csv"), pd.read_csv(root / f"p_{other}.csv")
    assert (p0["prob_1"] - p1["prob_1"]).abs().max() > 1e-4  # linear and lightgbm: two models, two outputs
    from sklearn.metrics import roc_auc_score

    labels = pd.read_csv(table).set_index("id").loc[p1["id"], "label"]
    m1 = json.loads((root / f"ev_{other}" / "metrics.json").read_text())
    assert m1["auroc"] == pytest.approx(roc_auc_score(labels, p1["prob_1"]), abs=1e-9)  # evaluate scored `other`
    for tag, head in (("primary", meta["primary"]), (other, other)):
        assert json.loads((root / f"xp_{tag}" / "explained.json").read_text())["head"] == head
    capsys.readouterr()
    assert main(["predict", str(ft), "--cohort", table, "--out", str(root / "p_x.csv"), "--head", "mlp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no saved head 'mlp'; saved: " in err[0] and other in err[0]

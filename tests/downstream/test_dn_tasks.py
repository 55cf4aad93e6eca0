"""Multiclass and multi-label fine-tuning: heads train and predict with the right shapes."""

import json

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def task_table(synth, tmp_path_factory):
    frame = pd.read_csv(synth.table)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]
    frame["grade"] = np.digitize(frame["marker"], [-0.5, 0.5])  # 3 classes from a clinical column
    frame["high"] = (frame["marker"] > 0).astype(int)
    path = tmp_path_factory.mktemp("dn_tasks") / "tasks.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_heads_on_other_tasks(dn_cfg, task_table, tmp_path, task):
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import load_finetuned

    label = "grade" if task == "multiclass" else "[label, high]"
    exclude = "[label, high]" if task == "multiclass" else "[grade]"
    cfg = dn_cfg(f"cohort.table={task_table}", f"cohort.label_column={label}", f"cohort.exclude={exclude}",
                 "finetune.heads=[linear, lightgbm]", "finetune.baselines=[tabular_lgbm]",
                 "evaluation.subgroups=[sex]", "finetune.lightgbm.with_raw_features=true")
    run = run_finetune(cfg, None, tmp_path / task, show=False)
    classes = ["0", "1", "2"] if task == "multiclass" else ["label", "high"]
    preds = pd.read_csv(run / "predictions.csv")
    probs = preds[[f"prob_{c}" for c in classes]].to_numpy()
    assert probs.shape[1] == len(classes) and np.all((probs >= 0) & (probs <= 1))
    if task == "multiclass":
        assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
        assert set(preds["label"].astype(str)) <= set(classes)
    else:
        assert {"label_label", "label_high"} <= set(preds.columns)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "no_table/auroc" in metrics
    # the run's AUROC is that of its predictions (scored here by sklearn: one-vs-rest / per label, macro)
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(task_table).set_index("id").loc[preds["id"]]
    if task == "multiclass":
        y = truth["grade"].to_numpy()
        assert metrics["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-9)
        marker_target = (y == 2).astype(int), probs[:, 2]
    else:
        per_label = [roc_auc_score(truth[c], preds[f"prob_{c}"]) for c in classes]
        assert metrics["auroc"] == pytest.approx(np.mean(per_label), abs=1e-9)
        marker_target = truth["high"].to_numpy(), preds["prob_high"].to_numpy()
    # the marker-made target has oracle AUROC 1.0 on these held-out rows (it is a function of the marker)
    assert roc_auc_score(marker_target[0], truth["marker"]) == 1.0
    assert roc_auc_score(*marker_target) >= 0.8
    comp = pd.read_csv(run / "comparison.csv").set_index("model")
    if task == "multiclass":  # every class is a function of the marker: trees on the clinical columns get it
        assert comp.loc["tabular_lgbm", "auroc"] >= 0.85
    lgb_run = load_finetuned(run, head="lightgbm")
    assert len(lgb_run.boosters) == (2 if task == "multilabel" else 1)
    assert lgb_run.label.classes == classes
    # 'high' / 'grade' are functions of the marker column: the trees on embedding + raw features
    # split on it most (the test split is ~10 rows, too few for a stable AUROC threshold)
    booster = lgb_run.boosters[-1]
    gain = booster.feature_importance(importance_type="gain")
    assert lgb_run.feature_names[int(np.argmax(gain))] == "raw_marker"


def test_tabular_lgbm_baseline_reads_the_omics_table(tiny_overrides, tmp_path):
    """A genomic cohort with no clinical feature: the label is one gene's sign, so trees on the
    omics values rank the held-out rows almost perfectly (oracle AUROC 1.0); before the baseline
    read the omics it refused a cohort without clinical columns."""
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune

    synth = make_synthetic_cohort(tmp_path / "cg", n_patients=40, images_per_patient=2, size=16, seed=5,
                                  omics_columns=8)
    frame = pd.read_csv(synth.table)
    omics = pd.read_csv(synth.omics)
    gene = synth.planted["omics_column"]
    frame["label"] = (omics.set_index("id").loc[frame["id"], gene].to_numpy() > 0).astype(int)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]
    table = tmp_path / "genomic.csv"
    frame.to_csv(table, index=False)
    clinical = [c for c in frame.columns if c not in ("id", "patient", "image", "label")]
    cfg = load_config(None, list(synth.overrides) + tiny_overrides + [
        f"cohort.table={table}", f"cohort.exclude=[{', '.join(clinical)}]", "finetune.heads=[linear]",
        "finetune.baselines=[tabular_lgbm]", "evaluation.subgroups=[]", "finetune.epochs=1"])
    run = run_finetune(cfg, None, tmp_path / "ft", show=False)
    comp = pd.read_csv(run / "comparison.csv").set_index("model")
    assert comp.loc["tabular_lgbm", "auroc"] >= 0.9

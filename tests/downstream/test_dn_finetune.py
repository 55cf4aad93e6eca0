"""run_finetune end-to-end on the synthetic cohort: outputs, heads, CV, bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest

from clinfusion.errors import DataError, RunDirError


def test_run_dir_outputs(finetuned):
    run, cfg = finetuned
    for name in ("config.yaml", "splits.csv", "preprocessing.json", "metrics.json", "predictions.csv",
                 "comparison.csv", "report.html", "classifier/meta.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ece", "sensitivity",
                "no_image/auroc", "no_table/auroc", "no_image/auroc_ci_low", "subgroup/sex=F/auroc",
                "subgroup/sex=F/n", "subgroup/age=<50/n", "subgroup_gap/sex/accuracy"):
        assert key in metrics, key
    assert metrics["auroc_ci_low"] <= metrics["auroc"] <= metrics["auroc_ci_high"]
    splits = pd.read_csv(run / "splits.csv")
    test_rows = splits[splits["split"] == "test"]
    # no patient in two splits
    assert splits.groupby("patient")["split"].nunique().max() == 1
    preds = pd.read_csv(run / "predictions.csv")
    assert sorted(preds["id"]) == sorted(test_rows["id"])
    assert list(preds.columns[:5]) == ["id", "patient", "label", "prob_0", "prob_1"]
    assert np.allclose(preds["prob_0"] + preds["prob_1"], 1.0)
    # the metrics are those of predictions.csv (primary head, all modalities)
    from sklearn.metrics import roc_auc_score

    assert metrics["auroc"] == pytest.approx(roc_auc_score(preds["label"], preds["prob_1"]))


def test_comparison_has_every_model_and_fraction(finetuned):
    run, _ = finetuned
    comp = pd.read_csv(run / "comparison.csv")
    models = {"linear", "linear_image", "linear_table", "linear_concat", "mlp", "full", "lightgbm", "tabular_lgbm",
              "image_only", "fused_scratch"}
    assert comp["selected"].sum() == 1 and bool(comp["selected"].iloc[0])
    assert set(comp["model"]) == models
    assert len(comp) == len(models) * 2 and set(comp["label_fraction"]) == {0.6, 1.0}
    for col in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "n_train"):
        assert col in comp.columns
    small = comp[comp["label_fraction"] == 0.6]["n_train"].iloc[0]
    full = comp[comp["label_fraction"] == 1.0]["n_train"].iloc[0]
    assert small < full


@pytest.mark.parametrize("head", ["linear", "linear_concat", "mlp", "full", "lightgbm"])
def test_saved_heads_reload_and_predict(finetuned, head):
    from clinfusion.downstream.data import FinetuneData
    from clinfusion.downstream.inference import load_finetuned

    run_dir, _ = finetuned
    run = load_finetuned(run_dir, head=head)
    assert run.head == head and run.class_names == ["0", "1"]
    assert (run.classifier is None) == (head == "lightgbm")
    from clinfusion.datasets.cohort import load_cohort

    cohort = load_cohort(run.cfg.cohort, require_labels=True)
    data = FinetuneData(cohort, run.preprocessor, run.cfg.image, run.label, batch_size=8)
    batch, _ = next(iter(data.loader(np.arange(8))))
    p = run.predict_proba(batch)
    assert p.shape == (8, 1) and np.all((p >= 0) & (p <= 1))
    if head == "lightgbm":
        X = run.features(batch)
        assert X.shape == (8, len(run.feature_names))
        assert run.feature_names[0] == "emb_0" and "raw_marker" in run.feature_names
    primary = json.loads((run_dir / "classifier" / "meta.json").read_text())["primary"]
    if head == primary:  # the reloaded primary head reproduces predictions.csv
        preds = pd.read_csv(run_dir / "predictions.csv").set_index("id")
        ids = [i for i in batch["id"] if i in preds.index]
        rows = [list(batch["id"]).index(i) for i in ids]
        assert np.allclose(p[rows, 0], preds.loc[ids, "prob_1"].to_numpy(), atol=1e-5)


def test_cv_folds_by_patient(dn_cfg, tmp_path):
    from clinfusion.downstream.finetune import run_finetune

    cfg = dn_cfg("finetune.cv_folds=3", "finetune.heads=[linear]", "finetune.baselines=[tabular_lgbm]",
                   "evaluation.missing_modality=false", "evaluation.subgroups=[]")
    run = run_finetune(cfg, None, tmp_path / "cv", show=False)
    splits = pd.read_csv(run / "splits.csv")
    assert set(splits["split"]) == {"fold0", "fold1", "fold2"}
    assert splits.groupby("patient")["split"].nunique().max() == 1
    preds = pd.read_csv(run / "predictions.csv")
    assert sorted(preds["id"]) == sorted(splits["id"])  # every labelled row tested exactly once
    comp = pd.read_csv(run / "comparison.csv")
    assert (comp["n_folds"] == 3).all() and {"auroc_fold_mean", "auroc_fold_std"} <= set(comp.columns)
    metrics = json.loads((run / "metrics.json").read_text())
    # the fold summary is that of the per-fold AUROCs of the predictions (scored here by sklearn)
    from sklearn.metrics import roc_auc_score

    both = preds.merge(splits[["id", "split"]], on="id")
    folds = [roc_auc_score(g["label"], g["prob_1"]) for _, g in both.groupby("split")]
    assert metrics["cv/auroc_mean"] == pytest.approx(np.mean(folds), abs=1e-9)
    assert metrics["cv/auroc_std"] == pytest.approx(np.std(folds), abs=1e-9)  # population sd over the folds
    row = comp.set_index("model").loc["linear"]
    assert (row["auroc_fold_mean"], row["auroc_fold_std"]) == pytest.approx((np.mean(folds), np.std(folds)), abs=1e-6)


def test_empty_class_label_fraction_is_a_clear_error(dn_cfg, synth, tmp_path):
    from clinfusion.downstream.finetune import run_finetune

    # positives only as the FIRST of two rows of 8 patients: every patient is mostly negative,
    # so a small patient-level fraction keeps no positive row
    frame = pd.read_csv(synth.table)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]
    frame["label"] = 0
    frame.loc[[2 * i for i in range(8)], "label"] = 1
    table = tmp_path / "rare.csv"
    frame.to_csv(table, index=False)
    cfg = dn_cfg(f"cohort.table={table}", "finetune.label_fractions=[0.1]", "finetune.heads=[linear]",
                 "finetune.baselines=[]")
    with pytest.raises(DataError, match=r"label.fractions?.{0,2}0\.1.*leaves class"):
        run_finetune(cfg, None, tmp_path / "frac", show=False)


def test_resume_with_other_settings_is_one_line_and_leaves_the_run(dn_cfg, tmp_path, capsys):
    """`finetune --resume` finishes what the interrupted run started: other heads or epochs are a
    one-line error naming the key, and the run folder (its config.yaml) is left as it was."""
    from clinfusion.cli.main import main
    from clinfusion.config import save_config
    from clinfusion.downstream.finetune import run_finetune

    cfg = dn_cfg("finetune.heads=[linear]", "finetune.baselines=[]", "finetune.label_fractions=[1.0]",
                 "evaluation.bootstrap=0")
    run = run_finetune(cfg, None, tmp_path / "ft", show=False)
    stored = (run / "config.yaml").read_text()
    save_config(cfg, tmp_path / "cfg.yaml")
    assert main(["finetune", str(tmp_path / "cfg.yaml"), "finetune.heads=[linear, lightgbm]", "--out", str(run),
                 "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finetune.heads: run ['linear'], this config ['linear', 'lightgbm']" in err[0], err
    assert (run / "config.yaml").read_text() == stored
    assert main(["finetune", str(tmp_path / "cfg.yaml"), "--out", str(run), "--resume",
                 "finetune.num_workers=1"]) == 0  # the same settings (a loading one changed): resumes


@pytest.mark.parametrize("mode", ["all", "fraction"])
def test_validation_labels_fraction_cuts_the_validation_patients_too(dn_cfg, synth, tmp_path, monkeypatch, mode):
    """finetune.validation_labels=fraction: the heads and the threshold see that fraction of the
    validation patients (both classes kept); "all" keeps every one at every fraction."""
    import numpy as np

    import clinfusion.downstream.finetune as ft

    seen = {}  # fraction -> (rows the head saw, rows the threshold saw)
    real_ctx, real_pick = ft.HeadContext, ft.pick_threshold

    def ctx_spy(*a, **kw):
        ctx = real_ctx(*a, **kw)
        if "work_dir" in kw:
            seen[float(str(kw["work_dir"]).rsplit("frac", 1)[1])] = [np.asarray(ctx.val_rows)]
        return ctx

    def pick_spy(pred, data, val_rows, *a, **kw):
        next(reversed(seen.values())).append(np.asarray(val_rows))
        return real_pick(pred, data, val_rows, *a, **kw)

    monkeypatch.setattr(ft, "HeadContext", ctx_spy)
    monkeypatch.setattr(ft, "pick_threshold", pick_spy)
    cfg = dn_cfg("finetune.label_fractions=[0.5, 1.0]", "finetune.heads=[linear]", "finetune.baselines=[]",
                 f"finetune.validation_labels={mode}", "evaluation.bootstrap=0", "evaluation.subgroups=[]")
    ft.run_finetune(cfg, None, tmp_path / mode, show=False)
    head_half, thr_half = seen[0.5]
    full = seen[1.0][0]
    assert np.array_equal(head_half, thr_half) and np.array_equal(seen[1.0][1], full)
    frame = pd.read_csv(synth.table)
    patients = lambda rows: set(frame["patient"].to_numpy()[rows])  # noqa: E731
    if mode == "all":
        assert np.array_equal(head_half, full)
    else:
        kept, every = patients(head_half), patients(full)
        assert kept < every and abs(len(kept) - len(every) / 2) <= 1
        assert frame["label"].to_numpy()[head_half].min() == 0 and frame["label"].to_numpy()[head_half].max() == 1


def test_incomplete_pretrained_dir_lists_missing(dn_cfg, tmp_path):
    from clinfusion.downstream.finetune import run_finetune

    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(RunDirError, match=r"incomplete: missing preprocessing.json, "
                                          r"checkpoints/best/model.safetensors or checkpoints/last"):
        run_finetune(dn_cfg(), str(pre), tmp_path / "out", show=False)


def test_load_finetuned_names_missing_parts(finetuned, tmp_path):
    import shutil

    from clinfusion.downstream.inference import load_finetuned

    broken = tmp_path / "broken"
    shutil.copytree(finetuned[0], broken)
    with pytest.raises(RunDirError, match="no saved head 'xgboost'; saved: linear, linear_image, linear_table, linear_concat, mlp, full, lightgbm"):
        load_finetuned(broken, head="xgboost")
    (broken / "classifier" / "meta.json").unlink()
    (broken / "preprocessing.json").unlink()
    with pytest.raises(RunDirError, match=r"incomplete: missing preprocessing.json, classifier/meta.json"):
        load_finetuned(broken)


def test_mlp_head_standardises_with_the_training_rows(finetuned):
    """The saved mlp head starts with the training rows' embedding mean / std (as the linear probe's
    scaler); zeros / ones would mean the statistics were never fitted, or fitted on other rows."""
    import torch

    from clinfusion.datasets.cohort import load_cohort
    from clinfusion.downstream.data import FinetuneData
    from clinfusion.downstream.inference import load_finetuned

    run_dir, _ = finetuned
    run = load_finetuned(run_dir, head="mlp")
    cohort = load_cohort(run.cfg.cohort, require_labels=True)
    data = FinetuneData(cohort, run.preprocessor, run.cfg.image, run.label, batch_size=8)
    splits = pd.read_csv(run_dir / "splits.csv", dtype=str)
    train_ids = set(splits.loc[splits["split"] == "train", "id"])
    rows = np.asarray([i for i, x in enumerate(data.ids) if x in train_ids])
    other = np.asarray([i for i, x in enumerate(data.ids) if x not in train_ids])
    emb = torch.as_tensor(data.embed(run.classifier.model, rows))
    std = run.classifier.head[0]
    assert torch.allclose(std.mean, emb.mean(0), atol=1e-4)
    assert torch.allclose(std.std, emb.std(0, unbiased=False), atol=1e-4)
    assert not torch.allclose(std.mean, torch.as_tensor(data.embed(run.classifier.model, other)).mean(0), atol=1e-3)
    x = std(emb)
    assert torch.allclose(x.mean(0), torch.zeros(x.shape[1]), atol=1e-4)


def test_comparison_table_prints_a_ci_only_when_there_is_one():
    """evaluation.bootstrap=0 leaves no interval: the table shows the AUROC alone, not '[nan, nan]'."""
    from clinfusion.downstream.finetune import format_comparison

    row = dict(model="linear", selected=True, label_fraction=1.0, val_auroc=0.8, auroc=0.75, auprc=0.6)
    with_ci = format_comparison(pd.DataFrame([dict(row, auroc_ci_low=0.7, auroc_ci_high=0.8)]))
    without = format_comparison(pd.DataFrame([dict(row, auroc_ci_low=float("nan"), auroc_ci_high=float("nan"))]))
    assert "0.750 [0.700, 0.800]" in with_ci
    assert "nan" not in without and "0.750" in without


def test_comparison_says_which_models_beat_chance_or_that_none_does():
    """The interval, not the point AUROC, decides: 0.75 [0.45, 0.95] on 23 rows shows nothing."""
    from clinfusion.downstream.finetune import format_comparison

    def table(*rows):
        return format_comparison(pd.DataFrame([dict(model=m, selected=i == 0, label_fraction=f, val_auroc=0.8, auroc=a,
                                                    auroc_ci_low=lo, auroc_ci_high=hi, auprc=0.6, n_test=23)
                                               for i, (m, f, a, lo, hi) in enumerate(rows)]))

    none = table(("linear", 1.0, 0.75, 0.45, 0.95), ("tabular_lgbm", 1.0, 0.52, 0.30, 0.74))
    assert none.splitlines()[-1].startswith("no model's test AUROC interval lies above chance (0.5) on 23 test rows")
    some = table(("linear", 1.0, 0.80, 0.62, 0.93), ("linear", 0.1, 0.70, 0.48, 0.88), ("mlp", 1.0, 0.7, 0.51, 0.85))
    assert some.splitlines()[-1] == "test AUROC interval above chance (0.5): linear (1), mlp (1)"
    no_ci = table(("linear", 1.0, 0.80, float("nan"), float("nan")))
    assert "chance" not in no_ci  # evaluation.bootstrap=0: no interval, no verdict


def test_a_head_choice_within_the_validation_noise_is_flagged():
    """Hanley & McNeil by hand: AUROC 0.5 on 50 + 50 rows has Q1 = Q2 = 1/3, variance (0.25 + 98 / 12) / 2500,
    SE 0.0580. A lead of 0.03 on 12 + 12 validation rows is noise; 0.30 on 200 + 200 rows is not."""
    from clinfusion.downstream.finetune import auroc_se, format_comparison

    assert auroc_se(0.5, 50, 50) == pytest.approx(((0.25 + 98 / 12) / 2500) ** 0.5, rel=1e-9)

    def table(val_linear, val_lgbm, n):
        rows = [("linear", "head", True, val_linear), ("lightgbm", "head", False, val_lgbm),
                ("tabular_lgbm", "baseline", False, 0.99)]  # a baseline is never a rival: only heads are chosen
        return format_comparison(pd.DataFrame([dict(model=m, kind=k, selected=s, label_fraction=1.0, val_auroc=v,
                                                    auroc=0.7, auprc=0.6, n_val_pos=n, n_val_neg=n)
                                               for m, k, s, v in rows]))

    noisy = table(0.60, 0.57, 12).splitlines()[-1]
    assert noisy.startswith("the choice is not clear: linear leads lightgbm on validation by 0.030 AUROC")
    assert "12 positive / 12 negative validation rows" in noisy
    assert "not clear" not in table(0.90, 0.60, 200)
    tie = table(1.0, 1.0, 5).splitlines()[-1]  # a tie has no standard error to beat: the heads' order decided
    assert tie.startswith("the choice is a tie: linear and lightgbm have the same validation AUROC (1.000")
    assert "comes first in finetune.heads" in tie


def test_comparison_counts_the_validation_rows_behind_val_auroc(finetuned):
    run, _ = finetuned
    comp = pd.read_csv(run / "comparison.csv")
    splits = pd.read_csv(run / "splits.csv")
    val = splits[splits["split"] == "val"]
    assert len(val) and (comp["n_val_pos"] + comp["n_val_neg"] <= len(val)).all()
    full = comp[comp["label_fraction"] == 1.0]
    assert (full["n_val_pos"] + full["n_val_neg"] == len(val)).all() and (full["n_val_pos"] > 0).all()


def test_finetune_repeats_validates_label_leak_warning(dn_cfg, synth, tmp_path, capsys):
    """A feature that is a noisy copy of the label is named where models train, not only by validate;
    an informative feature that is no copy is not."""
    from clinfusion.downstream.finetune import run_finetune

    frame = pd.read_csv(synth.table)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]
    rng = np.random.default_rng(0)
    frame["dx_score"] = frame["label"] * 3 + rng.normal(0, 0.3, len(frame))
    frame["risk_score"] = frame["label"] + rng.normal(0, 1.0, len(frame))  # informative, no copy
    from sklearn.metrics import roc_auc_score

    assert 0.65 < roc_auc_score(frame["label"], frame["risk_score"]) < 0.95  # the oracle, computed here
    table = tmp_path / "leaky.csv"
    frame.to_csv(table, index=False)
    cfg = dn_cfg(f"cohort.table={table}", "finetune.heads=[linear]", "finetune.baselines=[]",
                 "finetune.label_fractions=[1.0]", "evaluation.bootstrap=0")
    run_finetune(cfg, None, tmp_path / "ft", show=True)
    warned = [line for line in capsys.readouterr().out.splitlines() if "alone separates the label" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: feature 'dx_score' alone"), warned
    assert "cohort.exclude" in warned[0]
    assert not [line for line in warned if "risk_score" in line]

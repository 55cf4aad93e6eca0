"""External evaluation and prediction with a fine-tuned run's stored preprocessing."""

import json

import numpy as np
import pandas as pd
import pytest

from clinfusion.errors import DataError


def _copy_table(synth, tmp_path, edit):
    frame = pd.read_csv(synth.table)
    frame["image"] = [str(synth.table.parent / p) for p in frame["image"]]  # absolute: table moves
    frame = edit(frame.copy())
    path = tmp_path / "external.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_evaluate_counts_unseen_categories(finetuned, synth, tmp_path):
    from clinfusion.downstream.inference import run_evaluate

    def edit(f):
        f.loc[:4, "site"] = "<script>alert(1)</script>"
        return f

    run_dir, _ = finetuned
    out = run_evaluate(run_dir, _copy_table(synth, tmp_path, edit), tmp_path / "eval")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["unseen_categories/site"] == 5
    assert metrics["n"] == len(pd.read_csv(synth.table))
    for key in ("auroc", "auroc_ci_low", "no_image/auroc", "no_table/auroc", "subgroup/sex=M/auroc"):
        assert key in metrics
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == metrics["n"] and {"prob_0", "prob_1", "label"} <= set(preds.columns)
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "unseen" in html.lower()


def test_evaluate_missing_feature_columns_are_listed(finetuned, synth, tmp_path):
    from clinfusion.downstream.inference import run_evaluate

    table = _copy_table(synth, tmp_path, lambda f: f.drop(columns=["marker", "sex"]))
    with pytest.raises(DataError, match=r"external.csv: trained feature column\(s\) 'marker', 'sex' are missing.*"
                                        r"cohort.missing_features=missing"):
        run_evaluate(finetuned[0], table, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_evaluate_labels_outside_trained_classes(finetuned, synth, tmp_path):
    from clinfusion.downstream.inference import run_evaluate

    def edit(f):
        f.loc[0, "label"] = 7
        f.loc[1, "label"] = 9
        return f

    with pytest.raises(DataError, match=r"label column 'label' has value\(s\) '7', '9' outside the trained classes"):
        run_evaluate(finetuned[0], _copy_table(synth, tmp_path, edit), tmp_path / "eval")


def test_predict_unlabelled_rows(finetuned, synth, tmp_path):
    from clinfusion.downstream.inference import run_predict

    table = _copy_table(synth, tmp_path, lambda f: f.drop(columns=["label"]).iloc[:10])
    out = run_predict(finetuned[0], table, tmp_path / "p.csv")
    preds = pd.read_csv(out)
    assert len(preds) == 10 and list(preds.columns) == ["id", "patient", "prob_0", "prob_1", "predicted"]
    primary = json.loads((finetuned[0] / "classifier" / "meta.json").read_text())["primary"]
    meta = json.loads((finetuned[0] / "classifier" / primary / "head.json").read_text())
    expected = np.where(preds["prob_1"] >= meta["threshold"], 1, 0)
    assert (preds["predicted"].to_numpy() == expected).all()
    # the input table was not modified
    assert "label" not in pd.read_csv(table).columns


def test_evaluate_missing_columns_as_missing_when_configured(finetuned, synth, tmp_path):
    from clinfusion.downstream.inference import run_evaluate

    table = _copy_table(synth, tmp_path, lambda f: f.drop(columns=["sex"]))
    out = run_evaluate(finetuned[0], table, tmp_path / "eval", overrides=["cohort.missing_features=missing"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(pd.read_csv(table))
    assert not any(k.startswith("subgroup/sex=") for k in metrics)  # the column is gone
    # a dropped column reads as a column whose every value is missing, not as some filled-in value
    (tmp_path / "blank").mkdir()
    blank = _copy_table(synth, tmp_path / "blank", lambda f: f.assign(sex=np.nan))
    ref = run_evaluate(finetuned[0], blank, tmp_path / "eval_blank")
    got = pd.read_csv(out / "predictions.csv", dtype={"id": str}).set_index("id")
    want = pd.read_csv(ref / "predictions.csv", dtype={"id": str}).set_index("id").loc[got.index]
    assert np.allclose(got["prob_1"], want["prob_1"], atol=1e-6)
    kept = pd.read_csv(finetuned[0] / "predictions.csv", dtype={"id": str}).set_index("id")
    assert not np.allclose(want.loc[kept.index, "prob_1"], kept["prob_1"], atol=1e-4)  # sex matters to the model


def test_evaluate_without_cohort_scores_the_test_split_only(finetuned, tmp_path, capsys):
    from clinfusion.downstream.inference import run_evaluate

    out = run_evaluate(finetuned[0], None, tmp_path / "eval")
    assert "no --cohort given: scoring the run's test split" in capsys.readouterr().out
    splits = pd.read_csv(finetuned[0] / "splits.csv", dtype=str)
    preds = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert sorted(preds["id"]) == sorted(splits.loc[splits["split"] == "test", "id"])
    # the same rows and model as the fine-tuning run's own test predictions
    ft = pd.read_csv(finetuned[0] / "predictions.csv", dtype={"id": str}).set_index("id")
    assert np.allclose(preds.set_index("id").loc[ft.index, "prob_1"], ft["prob_1"], atol=1e-5)


def test_external_evaluation_warns_about_rows_the_run_trained_on(finetuned, synth, tmp_path, capsys):
    """A --cohort holding training/validation patients is scored but flagged; held-out patients only: no flag."""
    from clinfusion.downstream.inference import run_evaluate

    run_dir, _ = finetuned
    splits = pd.read_csv(run_dir / "splits.csv", dtype=str)
    seen = set(splits.loc[splits["split"] != "test", "patient"])
    frame = pd.read_csv(synth.table, dtype={"patient": str})
    n_seen = int(frame["patient"].isin(seen).sum())
    assert 0 < n_seen < len(frame)
    capsys.readouterr()
    out = run_evaluate(run_dir, _copy_table(synth, tmp_path, lambda f: f), tmp_path / "all")
    assert json.loads((out / "metrics.json").read_text())["rows_seen_in_training"] == n_seen
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "training/validation rows" in ln]
    assert len(lines) == 1 and f"{n_seen} of {len(frame)} scored row(s)" in lines[0]

    held = _copy_table(synth, tmp_path, lambda f: f[~f["patient"].astype(str).isin(seen)])
    out = run_evaluate(run_dir, held, tmp_path / "held")
    assert json.loads((out / "metrics.json").read_text())["rows_seen_in_training"] == 0
    assert "training/validation rows" not in capsys.readouterr().out


def test_unseen_categories_get_a_warning_line_in_predict(finetuned, synth, tmp_path, capsys):
    from clinfusion.downstream.inference import run_predict

    def edit(f):
        f.loc[:2, "site"] = "a_new_hospital"
        return f

    run_dir, _ = finetuned
    capsys.readouterr()
    run_predict(run_dir, _copy_table(synth, tmp_path, edit), tmp_path / "p.csv")
    out = capsys.readouterr().out
    assert "warning:" in out and "column 'site': 3 row(s) hold a category the run never saw" in out


def test_predict_with_an_omics_table_missing_a_trained_gene(tmp_path):
    """A trained omics column absent from the new omics table: one line naming it (like a clinical
    column); with cohort.missing_features=missing it is scored as missing."""
    from clinfusion.config import load_config
    from clinfusion.datasets.synthetic import make_synthetic_cohort
    from clinfusion.downstream.finetune import run_finetune
    from clinfusion.downstream.inference import run_predict
    from tests.downstream.conftest import TINY

    syn = make_synthetic_cohort(tmp_path / "c", n_patients=16, images_per_patient=1, size=16, seed=5, omics_columns=6)
    cfg = load_config(None, list(syn.overrides) + TINY + ["finetune.heads=[linear]", "finetune.baselines=[]",
                                                          "evaluation.subgroups=[]"])
    run_dir = run_finetune(cfg, None, tmp_path / "ft", show=False)
    om = pd.read_csv(syn.omics)
    gene = [c for c in om.columns if c != "id"][2]
    cut = tmp_path / "omics_cut.csv"
    om.drop(columns=[gene]).to_csv(cut, index=False)
    with pytest.raises(DataError, match=rf"1 of the 6 trained omics column\(s\) are missing from the omics table "
                                        rf".*omics_cut\.csv', first '{gene}': add them, or set cohort.missing_features"):
        run_predict(run_dir, None, tmp_path / "p.csv", overrides=[f"cohort.omics.table={cut}"])
    out = run_predict(run_dir, None, tmp_path / "p2.csv",
                      overrides=[f"cohort.omics.table={cut}", "cohort.missing_features=missing"])
    assert len(pd.read_csv(out)) == len(pd.read_csv(syn.table))

"""The quality benchmark reports, beside every model, the head `clinfusion finetune` would have chosen
on the validation patients of each run (what a user gets), and scores a chosen single-input probe
against that input's oracle."""

import numpy as np
import pandas as pd

from benchmarks._quality_runs import run_records, seed_rows, with_chosen


def _runs():
    rows = []
    # seed 0: lightgbm best on validation, linear_image best of all heads; seed 1: a tie -> the first head listed
    for seed, val, test in ((0, {"linear": 0.70, "lightgbm": 0.80, "linear_image": 0.90, "mlp": np.nan},
                             {"linear": 0.61, "lightgbm": 0.72, "linear_image": 0.55, "mlp": 0.99}),
                            (1, {"linear": 0.75, "lightgbm": 0.75, "linear_image": 0.60, "mlp": np.nan},
                             {"linear": 0.66, "lightgbm": 0.80, "linear_image": 0.50, "mlp": 0.98})):
        for m in val:
            rows.append({"seed": seed, "model": m, "label_fraction": 1.0, "val_auroc": val[m], "auroc": test[m],
                         "auprc": test[m], "oracle_image": 0.8, "oracle_table": 0.7, "oracle_both": 0.95})
    return pd.DataFrame(rows)


def test_chosen_rows_follow_the_validation_auroc_and_the_head_order():
    runs = with_chosen(_runs(), "seed")
    fused = runs[runs["model"] == "chosen_fused"].sort_values("seed")  # linear, lightgbm
    assert fused["chosen_head"].tolist() == ["lightgbm", "linear"] and fused["auroc"].tolist() == [0.72, 0.66]
    demo = runs[runs["model"] == "chosen_demo"].sort_values("seed")  # the demo's probes and lightgbm
    assert demo["chosen_head"].tolist() == ["linear_image", "linear"] and demo["auroc"].tolist() == [0.55, 0.66]
    every = runs[runs["model"] == "chosen_all"].sort_values("seed")  # mlp's NaN validation AUROC is never picked
    assert every["chosen_head"].tolist() == ["linear_image", "linear"] and every["auroc"].tolist() == [0.55, 0.66]


def test_a_chosen_row_is_scored_against_its_heads_oracle():
    rows = {r["model"]: r for r in seed_rows(with_chosen(_runs(), "seed"), oracle=True)}
    chosen = rows["chosen on validation among every head"]
    assert chosen["chosen per run"] == "linear_image linear"
    assert abs(chosen["oracle (same inputs)"] - (0.8 + 0.95) / 2) < 1e-12  # image oracle, then both
    assert rows["fused pretrained: linear probe"]["chosen per run"] == ""


def test_run_records_keep_every_run_with_its_validation_auroc():
    recs = run_records(with_chosen(_runs(), "seed"), "seed")
    assert len(recs) == 8 + 6 and {r["seed"] for r in recs} == {0, 1}
    mlp = [r for r in recs if r["model"] == "mlp"]
    assert [r["val_auroc"] for r in mlp] == [None, None] and [r["auroc"] for r in mlp] == [0.99, 0.98]

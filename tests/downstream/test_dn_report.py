"""The HTML report is self-contained and escapes every value from the cohort."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

from clinfusion.config.schema import RunConfig
from clinfusion.downstream.data import Fold
from clinfusion.downstream.report import finetune_report
from clinfusion.downstream.labels import LabelInfo

EVIL = "<script>alert(1)</script>"


def test_report_escapes_cohort_values_and_embeds_pngs(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    y = rng.integers(0, 2, n)
    cohort = SimpleNamespace(ids=[f"r{i}" for i in range(n)], patients=[f"p{i // 2}" for i in range(n)],
                             image_paths=[None] * n, numeric=["age"], categorical=[EVIL], label_index=y)
    info = LabelInfo("binary", ["0", "1"], ["label"])
    p = np.clip(y * 0.5 + rng.uniform(0, 0.5, n), 0, 1)
    preds = pd.DataFrame({"id": cohort.ids, "patient": cohort.patients, "label": y.astype(str),
                          "prob_0": 1 - p, "prob_1": p})
    metrics = {"auroc": 0.9, "auroc_ci_low": 0.8, "auroc_ci_high": 0.95, "no_image/auroc": 0.7,
               f"subgroup/sex={EVIL}/auroc": 0.5, f"subgroup/sex={EVIL}/n": 4.0, f"subgroup_gap/{EVIL}/auroc": 0.2}
    comparison = pd.DataFrame([{"model": m, "kind": "head", "label_fraction": f, "auroc": a, "auroc_ci_low": a - .1,
                                "auroc_ci_high": a + .05, "auprc": a, "n_train": 10}
                               for m, f, a in (("linear", 0.5, 0.7), ("linear", 1.0, 0.9), (EVIL, 1.0, 0.6))])
    folds = [Fold("holdout", np.arange(20), np.arange(20, 30), np.arange(30, 40))]
    path = finetune_report(tmp_path, cohort, info, folds, metrics, comparison, preds, RunConfig())
    text = path.read_text()
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("data:image/png;base64,") == 3  # ROC, reliability, label efficiency
    assert "<script" not in text and "http" not in text  # self-contained, nothing executable
    assert "0.900" in text and "0.800" in text  # AUROC and its CI

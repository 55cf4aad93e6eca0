"""Subgroup metrics, age bands and the gap call-out."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from clinfusion.downstream.evaluation import compute_metrics
from clinfusion.downstream.evaluation import band_labels, subgroup_metrics


def test_age_bands_and_missing():
    labels = band_labels(pd.Series([30, 45, 60, 75, np.nan]), [40, 60])
    assert labels.tolist() == ["<40", "40-60", ">=60", ">=60", "missing"]
    assert band_labels(pd.Series(["F", None, "M"])).tolist() == ["F", "missing", "M"]


def test_subgroup_metrics_and_gap():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3, 0.4, 0.6])
    sex = np.array(["F"] * 4 + ["M"] * 4)
    patients = [f"p{i // 2}" for i in range(8)]
    res = subgroup_metrics({"sex": sex}, y, p, patients, lambda a, b: compute_metrics(a, b, "binary"))
    flat = res.flat()
    assert flat["subgroup/sex=F/n"] == 4 and flat["subgroup/sex=F/n_patients"] == 2
    auc_f, auc_m = roc_auc_score(y[:4], p[:4]), roc_auc_score(y[4:], p[4:])
    assert flat["subgroup/sex=F/auroc"] == pytest.approx(auc_f)
    assert flat["subgroup/sex=M/auroc"] == pytest.approx(auc_m)
    gap, best, worst = res.gaps["sex"]["auroc"]
    assert gap == pytest.approx(auc_f - auc_m) and (best, worst) == ("F", "M")
    assert flat["subgroup_gap/sex/auroc"] == pytest.approx(abs(auc_f - auc_m))

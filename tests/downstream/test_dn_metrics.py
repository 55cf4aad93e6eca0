"""Metrics against scikit-learn and hand computations."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from clinfusion.downstream.evaluation import choose_threshold, compute_metrics, expected_calibration_error


def test_binary_metrics_match_sklearn_and_hand_counts():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.2, 0.9, 0.3, 0.8])
    m = compute_metrics(y, p, "binary", threshold=0.5)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["auprc"] == pytest.approx(average_precision_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    # predictions at 0.5: [0,1,1,0,0,1,0,1] -> TP=3, FN=1, TN=3, FP=1
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["n"] == 8
    # threshold 0.35 -> predictions [0,1,1,1,0,1,0,1]: TP=4, FP=1
    m2 = compute_metrics(y, p, "binary", threshold=0.35)
    assert m2["sensitivity"] == 1.0 and m2["specificity"] == pytest.approx(3 / 4)


def test_ece_hand_computed():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.95, 0.85])
    # 2 bins: [0,0.5): mean y 0.5, mean p 0.1 -> 0.4 ; [0.5,1]: mean y 1, mean p 0.9 -> 0.1
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_multiclass_macro_one_vs_rest():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    p = rng.dirichlet(np.ones(3), size=len(y))
    m = compute_metrics(y, p, "multiclass")
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    onehot = np.eye(3)[y]
    assert m["auprc"] == pytest.approx(np.mean([average_precision_score(onehot[:, c], p[:, c]) for c in range(3)]))
    assert m["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
    assert m["brier"] == pytest.approx(np.mean(np.sum((p - onehot) ** 2, 1)))


def test_multilabel_skips_single_class_label_and_says_so():
    y = np.array([[0, 1, 0], [1, 1, 1], [0, 1, np.nan], [1, 1, 0]])
    p = np.array([[0.2, 0.9, 0.1], [0.8, 0.7, 0.6], [0.3, 0.8, 0.5], [0.6, 0.9, 0.4]])
    with pytest.warns(UserWarning, match="label.*b"):
        m = compute_metrics(y, p, "multilabel", label_names=["a", "b", "c"])
    assert m["n_labels_skipped"] == 1
    a = roc_auc_score(y[:, 0], p[:, 0])
    c = roc_auc_score([0, 1, 0], [0.1, 0.6, 0.4])  # label c on its labelled rows 0, 1, 3
    assert m["auroc"] == pytest.approx((a + c) / 2)


def test_youden_threshold_separates_classes():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    t = choose_threshold(y, p, "youden")
    assert 0.3 < t <= 0.35
    assert choose_threshold(y, p, "0.5") == 0.5
    assert choose_threshold(y, np.eye(3)[[0, 1, 2, 0, 1, 2]], "youden", kind="multiclass") is None

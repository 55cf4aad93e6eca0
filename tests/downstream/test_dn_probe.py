"""Linear probes: L2 logistic regression on standardised embeddings, C chosen on validation."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from clinfusion.config.schema import ProbeConfig
from clinfusion.downstream.probe import c_grid, fit_probe


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _spurious(rng, n, spurious):
    """Feature 2 = feature 1 + a tiny offset; in the training rows the offset's sign IS the label
    (a spurious shortcut a weakly regularised fit exploits), elsewhere it is random."""
    x1 = rng.normal(size=n)
    y = (x1 + 0.7 * rng.normal(size=n) > 0).astype(float)
    d = 0.05 * (2 * y - 1) if spurious else 0.05 * rng.choice([-1, 1], n)
    return np.stack([x1, x1 + d + 0.01 * rng.normal(size=n)], 1), y


def test_c_is_chosen_on_validation_rows_where_strong_regularisation_wins():
    rng = np.random.default_rng(0)
    Xt, yt = _spurious(rng, 40, True)
    Xv, yv = _spurious(rng, 400, False)
    cfg = ProbeConfig()
    fit = fit_probe(Xt, yt, Xv, yv, "binary", cfg, 1)
    # reference: validation AUROC of a scikit-learn pipeline at every C of the grid
    ref = {}
    for C in c_grid(cfg):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000)).fit(Xt, yt)
        ref[float(C)] = roc_auc_score(yv, pipe.predict_proba(Xv)[:, 1])
        train_auroc = roc_auc_score(yt, pipe.predict_proba(Xt)[:, 1])
    assert train_auroc == 1.0  # weakest regularisation: the training rows alone would pick it
    assert ref[max(ref)] < max(ref.values()) - 0.2  # ... and validation punishes it
    assert fit.C <= 1.0 and ref[fit.C] == pytest.approx(max(ref.values()), abs=1e-3)
    # the folded linear map equals the pipeline's probabilities at the chosen C
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=fit.C, max_iter=1000)).fit(Xt, yt)
    ours = _sigmoid(Xv @ fit.coef.T + fit.intercept)[:, 0]
    assert np.allclose(ours, pipe.predict_proba(Xv)[:, 1], atol=1e-4)


def test_probe_beats_the_best_single_feature_threshold_and_nears_the_oracle():
    rng = np.random.default_rng(1)

    def make(n):
        X = rng.normal(size=(n, 10))  # 2 informative dims, 8 distractors
        y = (X[:, 0] + X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(float)
        X[:, 2] = X[:, 0] + rng.normal(size=n)  # a distractor correlated with an informative dim
        return X, y

    (Xt, yt), (Xv, yv), (Xs, ys) = make(200), make(200), make(1000)
    fit = fit_probe(Xt, yt, Xv, yv, "binary", ProbeConfig(), 1)
    probe = roc_auc_score(ys, (Xs @ fit.coef.T)[:, 0])
    # hand-computed references on the test rows: a threshold on the best single feature, and
    # the oracle direction x0 + x1
    single = max(roc_auc_score(ys, Xs[:, j]) for j in range(10))
    oracle = roc_auc_score(ys, Xs[:, 0] + Xs[:, 1])
    assert probe > single + 0.08
    assert probe > oracle - 0.02


def test_multiclass_and_multilabel_probes_give_one_column_per_output():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 4))
    y = np.argmax(X[:, :3] + 0.3 * rng.normal(size=(150, 3)), 1)
    fit = fit_probe(X[:100], y[:100], X[100:], y[100:], "multiclass", ProbeConfig(c_steps=5), 3)
    assert fit.coef.shape == (3, 4)
    acc = (np.argmax(X[100:] @ fit.coef.T + fit.intercept, 1) == y[100:]).mean()
    oracle = (np.argmax(X[100:, :3], 1) == y[100:]).mean()  # the noise-free decision rule
    assert acc > oracle - 0.05
    ym = (X[:, :2] > 0).astype(float)
    ym[:10, 1] = np.nan  # unlabelled entries are skipped per label
    fit = fit_probe(X[:100], ym[:100], X[100:], ym[100:], "multilabel", ProbeConfig(c_steps=5), 2)
    pred = (X[100:] @ fit.coef.T + fit.intercept) > 0
    assert fit.coef.shape == (2, 4) and (pred == (ym[100:] > 0)).mean() > 0.9


def test_without_validation_rows_the_probe_uses_c_1():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(float)
    fit = fit_probe(X, y, np.zeros((0, 3)), np.zeros(0), "binary", ProbeConfig(), 1)
    assert fit.C == 1.0 and np.isnan(fit.val_auroc)


def test_probe_probabilities_of_extreme_logits_are_exact_and_quiet():
    """Logits of +-1000 (a well-separated validation row) give 1 and 0 without numpy's overflow warning."""
    import warnings

    from clinfusion.downstream.probe import _probs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = _probs(np.array([[1000.0], [-1000.0], [0.0]]), "binary")
    np.testing.assert_array_equal(p[:, 0], [1.0, 0.0, 0.5])

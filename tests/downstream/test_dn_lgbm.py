"""LightGBM helpers: one booster (binary / multiclass) or one per label, text round trip."""

import numpy as np
import pytest

from clinfusion.config.schema import LightGBMConfig
from clinfusion.downstream.lgbm import fit_boosters, load_boosters, predict_boosters, save_boosters

CFG = LightGBMConfig(n_estimators=20, min_child_samples=2, num_threads=1)


def _draw(task, n, rng):
    """Rows whose targets follow a rule of columns 0 / 1, with 5% of the targets flipped (label noise)."""
    X = rng.normal(size=(n, 4))
    if task == "binary":
        y = (X[:, 0] > 0).astype(float)
    elif task == "multiclass":
        y = np.digitize(X[:, 0], [-0.5, 0.5]).astype(float)
    else:
        y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0)], 1).astype(float)
    rule = y.copy()
    flip = rng.random(y.shape) < 0.05
    y[flip] = (y[flip] + 1) % (3 if task == "multiclass" else 2)
    return X, y, rule


@pytest.mark.parametrize("task,k", [("binary", 1), ("multiclass", 3), ("multilabel", 2)])
def test_fit_predict_on_held_out_rows_and_text_roundtrip(tmp_path, task, k):
    rng = np.random.default_rng(0)
    X, y, _ = _draw(task, 200, rng)
    if task == "multilabel":
        # unlabelled entries must be left out of that label's booster, not read as negatives: hide the second
        # label wherever column 1 is above 0.5 (all positives); as negatives they would teach the opposite rule
        y[X[:, 1] > 0.5, 1] = np.nan
    boosters = fit_boosters(X, y, task, CFG, num_classes=3)
    assert len(boosters) == (2 if task == "multilabel" else 1)
    Xt, yt, rule = _draw(task, 300, rng)  # held-out rows
    p = predict_boosters(boosters, Xt, task, k)
    assert p.shape == (300, k) and np.all((p >= 0) & (p <= 1))
    pred = p.argmax(1) if task == "multiclass" else (p > 0.5).astype(float).reshape(yt.shape)
    oracle = np.mean(rule == yt)  # accuracy of the true rule on the noisy held-out targets
    assert np.mean(pred == yt) >= oracle - 0.12
    if task == "multiclass":
        assert np.allclose(p.sum(1), 1.0)
    if task == "multilabel":
        assert np.mean(p[Xt[:, 1] > 0.5, 1] > 0.5) > 0.9  # the hidden region is still predicted positive
    names = save_boosters(boosters, tmp_path)
    assert all((tmp_path / n).read_text().startswith("tree") for n in names)
    assert np.allclose(predict_boosters(load_boosters(tmp_path, names), Xt, task, k), p)


def test_a_booster_without_any_split_gets_a_warning_line(capsys):
    """14 rows with min_child_samples=10 cannot split: constant predictions, said in one line."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(14, 3))
    y = (X[:, 0] > 0).astype(float)
    boosters = fit_boosters(X, y, "binary", LightGBMConfig(n_estimators=5, min_child_samples=10, num_threads=1))
    assert np.ptp(predict_boosters(boosters, X, "binary", 1)) == 0.0
    assert "LightGBM learned no split from 14 training rows (finetune.lightgbm.min_child_samples=10)" in \
        capsys.readouterr().out
    fit_boosters(X, y, "binary", LightGBMConfig(n_estimators=5, min_child_samples=2, num_threads=1))
    assert "no split" not in capsys.readouterr().out

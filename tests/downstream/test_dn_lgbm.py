"""LightGBM helpers: one booster (binary / multiclass) or one per label, text round trip."""

import numpy as np
import pytest

from clinfusion.config.schema import LightGBMConfig
from clinfusion.downstream.lgbm import fit_boosters, load_boosters, predict_boosters, save_boosters

CFG = LightGBMConfig(n_estimators=20, min_child_samples=2, num_threads=1)


@pytest.mark.parametrize("task,k", [("binary", 1), ("multiclass", 3), ("multilabel", 2)])
def test_fit_predict_shapes_and_text_roundtrip(tmp_path, task, k):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    if task == "binary":
        y = (X[:, 0] > 0).astype(float)
    elif task == "multiclass":
        y = np.digitize(X[:, 0], [-0.5, 0.5])
    else:
        y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0)], 1).astype(float)
        y[:5, 1] = np.nan  # unlabelled entries are left out of that label's booster
    boosters = fit_boosters(X, y, task, CFG, num_classes=3)
    assert len(boosters) == (2 if task == "multilabel" else 1)
    p = predict_boosters(boosters, X, task, k)
    assert p.shape == (60, k) and np.all((p >= 0) & (p <= 1))
    if task == "multiclass":
        assert np.allclose(p.sum(1), 1.0)
        assert np.mean(p.argmax(1) == y) > 0.8
    else:
        target = y.reshape(60, -1)
        ok = ~np.isnan(target)
        assert np.mean((p[ok] > 0.5) == (target[ok] > 0.5)) > 0.8
    names = save_boosters(boosters, tmp_path)
    assert all((tmp_path / n).read_text().startswith("tree") for n in names)
    assert np.allclose(predict_boosters(load_boosters(tmp_path, names), X, task, k), p)


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

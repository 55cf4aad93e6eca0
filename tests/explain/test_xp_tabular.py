"""Tabular attributions vs hand computation on the linear token toy; missing values; TreeSHAP."""

import numpy as np
import pytest
import torch
from xp_helpers import LinearToy, toy_batch, toy_explainable

from clinfusion.config.schema import ExplainConfig
from clinfusion.errors import ConfigError
from clinfusion.explain.tabular import explain_table, treeshap_attributions

GROUPS = [[0, 1], [2]]


def _hand(model, batch):
    """Per-token contribution <v, token - missing token> of the linear toy, [B, T]."""
    tk = model.tokenizer
    with torch.no_grad():
        tok = tk(*(batch[k] for k in ("num", "num_missing", "cat", "cat_missing", "omics", "omics_missing")))
        miss = torch.cat([tk.num_miss, tk.cat_miss, tk.om_miss], 0)
        return ((tok - miss[None]) @ model.v).numpy()


@pytest.fixture
def setup():
    model = LinearToy((1, 8, 8), groups=GROUPS)
    ex = toy_explainable(model, groups=GROUPS)
    batch = toy_batch(g=3, missing=(1, 2))  # row 1, numeric column n2 missing
    return model, ex, batch


def test_ig_and_ablation_match_hand_values_and_report_missing(setup):
    model, ex, batch = setup
    t = torch.zeros(3, dtype=torch.long)
    out = explain_table(ex, batch, t, ["tabular_ig", "feature_ablation"], ExplainConfig(ig_steps=8))
    hand = _hand(model, batch)
    hand[1, 2] = np.nan  # the missing value is reported as missing, not as a number
    for m in ("tabular_ig", "feature_ablation"):
        a = out[m]
        assert a.names == ["n0", "n1", "n2", "c0", "set0", "set1"]
        np.testing.assert_allclose(a.values, hand, rtol=1e-4, atol=1e-4)
        assert a.missing[1, 2] and a.missing.sum() == 1
        assert np.isnan(a.values[1, 2])


def test_gene_ig_equals_linear_contribution(setup):
    model, ex, batch = setup
    batch["omics"][0, 1] = 0.0
    batch["omics_missing"][0, 1] = True
    out = explain_table(ex, batch, torch.zeros(3, dtype=torch.long), ["tabular_ig"], ExplainConfig(ig_steps=8))
    genes = out["tabular_ig"].genes
    with torch.no_grad():  # gene j of group k: <v, W_k[:, j]> * x_j
        coef = torch.cat([model.tokenizer.om[0].weight.T @ model.v, model.tokenizer.om[1].weight.T @ model.v])
    expected = (batch["omics"] * coef).numpy()
    ok = ~batch["omics_missing"].numpy()
    np.testing.assert_allclose(genes[ok], expected[ok], rtol=1e-4, atol=1e-5)
    assert np.isnan(genes[0, 1]) and out["tabular_ig"].gene_names == ["g0", "g1", "g2"]


def test_whole_omics_group_missing_is_nan(setup):
    _, ex, batch = setup
    batch["omics_missing"][2, 2] = True  # group set1 = gene 2 only
    out = explain_table(ex, batch, torch.zeros(3, dtype=torch.long), ["feature_ablation"], ExplainConfig())
    a = out["feature_ablation"]
    assert a.missing[2, 5] and np.isnan(a.values[2, 5]) and not a.missing[2, 4]


def test_tabular_ig_without_token_layer_names_the_setting(setup):
    _, ex, batch = setup
    ex.token_layer = None
    with pytest.raises(ConfigError, match="'tabular_ig' needs a model with a tabular encoder: remove it from"):
        explain_table(ex, batch, torch.zeros(3, dtype=torch.long), ["tabular_ig"], ExplainConfig())


def test_treeshap_maps_raw_columns_and_sums_to_margin():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 2] > 0).astype(float)
    names = ["emb_0", "emb_1", "raw_marker", "raw_age"]
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_bin": 1},
                        lgb.Dataset(X, y, feature_name=names), num_boost_round=10)
    Xq = X[:5].copy()
    Xq[3, 3] = np.nan
    miss = np.zeros((5, 2), bool)
    miss[3, 1] = True
    a = treeshap_attributions(booster, Xq, names, ["marker", "age"], miss, np.zeros(5, int), 1)
    assert a.names == ["marker", "age", "fused_embedding"]
    contrib = booster.predict(Xq, pred_contrib=True)
    np.testing.assert_allclose(a.values[:, 0], contrib[:, 2])
    np.testing.assert_allclose(a.values[:, 2], contrib[:, 0] + contrib[:, 1])
    assert np.isnan(a.values[3, 1]) and a.missing[3, 1]
    margin = booster.predict(Xq, raw_score=True)  # SHAP values + expected value = margin
    np.testing.assert_allclose(np.nansum(a.values, 1)[[0, 1, 2, 4]] + contrib[[0, 1, 2, 4], -1], margin[[0, 1, 2, 4]],
                               rtol=1e-6)
    assert np.abs(a.values[:, 0]).mean() > np.abs(a.values[:, 2]).mean()  # marker drives the label

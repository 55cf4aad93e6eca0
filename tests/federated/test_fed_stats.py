"""Federated preprocessing: per-site sums merged on the server equal a pooled fit."""

import numpy as np
import pytest

from clinfusion.config import load_config
from clinfusion.datasets.cohort import load_cohort
from clinfusion.datasets.preprocess import TabularPreprocessor
from clinfusion.errors import DataError
from clinfusion.federated.stats import merge_stats, site_stats


@pytest.fixture(scope="module")
def omics_cohort(tmp_path_factory):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    syn = make_synthetic_cohort(tmp_path_factory.mktemp("st"), n_patients=20, images_per_patient=2, size=16,
                                n_clinical=6, omics_columns=7, missing_value_rate=0.15, seed=3)
    cohort = load_cohort(load_config(None, list(syn.overrides)).cohort)
    cohort.frame["const"] = 2.5  # a constant column: std 1 in both fits
    cohort.numeric.append("const")
    return cohort


def test_merged_site_statistics_equal_the_pooled_fit(omics_cohort):
    c = omics_cohort
    rng = np.random.RandomState(0)
    rows = rng.permutation(len(c))[:30]  # the training rows of the union, unevenly over 3 sites
    parts = {"a": rows[:5], "b": rows[5:17], "c": rows[17:]}
    merged = merge_stats({s: site_stats(c, r, min_count=1) for s, r in parts.items()})
    pooled = TabularPreprocessor().fit(c, rows)
    assert merged.numeric == pooled.numeric and "const" in merged.numeric and len(merged.numeric) >= 3
    np.testing.assert_allclose(merged.num_mean, pooled.num_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(merged.num_std, pooled.num_std, rtol=1e-7)
    assert merged.num_std[merged.numeric.index("const")] == 1.0
    assert merged.vocab == pooled.vocab and merged.categorical and all(merged.vocab.values())
    assert merged.omics_columns == pooled.omics_columns and len(merged.omics_columns) == 7
    np.testing.assert_allclose(merged.omics_mean, pooled.omics_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(merged.omics_std, pooled.omics_std, rtol=1e-7)
    a, b = merged.transform(c), pooled.transform(c)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_sites_do_not_reveal_rare_categories(omics_cohort):
    c = omics_cohort
    frame = c.frame
    col = c.categorical[0]
    before = frame.loc[[0, 1], col].copy()
    frame.loc[0, col], frame.loc[1, col] = "rare", "rare"  # one row at each of two sites
    try:
        parts = {"a": np.array([0, 2, 3, 4]), "b": np.array([1, 5, 6, 7])}
        stats = {s: site_stats(c, r, min_count=2) for s, r in parts.items()}
        assert all("rare" not in s["cat"][col] for s in stats.values())
        assert "rare" not in merge_stats(stats).vocab[col]
        assert "rare" in TabularPreprocessor().fit(c, np.arange(8)).vocab[col]  # a pooled fit would show it
        counts = {v: int((frame.loc[np.r_[0, 2, 3, 4], col].astype(str) == v).sum()) for v in stats["a"]["cat"][col]}
        assert all(n >= 2 for n in counts.values()) and counts == stats["a"]["cat"][col]
    finally:
        frame.loc[[0, 1], col] = before


def test_sites_with_other_columns_give_one_line(omics_cohort):
    c = omics_cohort
    a = site_stats(c, np.arange(6), 1)
    b = site_stats(c, np.arange(6, 12), 1)
    b["numeric"] = b["numeric"][:-1]
    with pytest.raises(DataError) as e:
        merge_stats({"north": a, "south": b})
    msg = str(e.value)
    assert "\n" not in msg and "site 'south'" in msg and "'const'" in msg

"""Benchmark cohorts never feed a label column to an encoder (NIH: `findings`, `abnormal`)."""

from __future__ import annotations


def test_federated_nih_sites_keep_findings_out_of_the_features(tmp_path):
    from benchmarks.federated import MODEL, nih_cohort, synthetic_cohort
    from clinfusion.config import load_config
    from clinfusion.datasets.cohort import load_cohort

    _, overrides = nih_cohort(tmp_path / "nih", 12, 0)
    cohort = load_cohort(load_config(None, overrides + MODEL).cohort, require_labels=True)
    features = set(cohort.numeric) | set(cohort.categorical)
    assert {"sex", "view", "age"} <= features
    assert not features & {"findings", "abnormal", "site"}, features

    _, overrides = synthetic_cohort(tmp_path / "syn", 12, 0)
    cohort = load_cohort(load_config(None, overrides + MODEL).cohort, require_labels=True)
    features = set(cohort.numeric) | set(cohort.categorical)
    assert "marker" in features and not features & {"label", "site"}, features

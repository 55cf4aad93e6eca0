"""Benchmark cohorts never feed a label column to an encoder (NIH: `findings`, `abnormal`)."""

from __future__ import annotations


def test_federated_nih_sites_keep_findings_out_of_the_features(tmp_path):
    from benchmarks.federated import RUN, nih_cohort, run_config, synthetic_cohort
    from clinfusion.datasets.cohort import load_cohort

    _, overrides = nih_cohort(tmp_path / "nih", 12, 0)
    cohort = load_cohort(run_config(overrides + RUN).cohort, require_labels=True)
    features = set(cohort.numeric) | set(cohort.categorical)
    assert {"sex", "view", "age"} <= features
    assert not features & {"findings", "abnormal", "site"}, features

    _, overrides = synthetic_cohort(tmp_path / "syn", 12, 0)
    cohort = load_cohort(run_config(overrides + RUN).cohort, require_labels=True)
    features = set(cohort.numeric) | set(cohort.categorical)
    assert "marker" in features and not features & {"label", "site"}, features

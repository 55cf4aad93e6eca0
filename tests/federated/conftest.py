"""Fixtures for the federated tests: a tiny synthetic cohort with a ``site`` column and
helpers writing per-site tables (helpers live in ``fed_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fed_cohort(tmp_path_factory: pytest.TempPathFactory):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("fedsynth"), n_patients=18, images_per_patient=2, size=16,
                                 missing_value_rate=0.05, seed=0)

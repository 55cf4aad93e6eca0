"""Fixtures for the training tests (helpers live in ``trn_helpers``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    return make_synthetic_cohort(tmp_path_factory.mktemp("synth"), n_patients=20, images_per_patient=2, size=16,
                                 missing_image_rate=0.1, missing_value_rate=0.05, seed=0)

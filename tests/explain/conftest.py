"""Fixtures for the explain tests; the toy models live in ``xp_helpers`` (a unique module
name, so test folders' conftest modules never shadow each other)."""

from __future__ import annotations

import pytest

from xp_helpers import ConvToy, LinearToy, planted_data, toy_batch, toy_explainable, train_toy  # noqa: F401


@pytest.fixture
def linear_toy():
    model = LinearToy((1, 8, 8), groups=[[0, 1], [2]])
    return model, toy_explainable(model, groups=[[0, 1], [2]]), toy_batch(g=3)


@pytest.fixture(scope="session")
def trained_toy():
    """A ConvToy trained for a few seconds on the in-memory planted cohort."""
    batch, y, region = planted_data()
    model = train_toy(ConvToy(), batch, y)
    return model, batch, y, region

"""Fixtures for the explain tests; the toy models live in ``xp_helpers`` (a unique module
name, so test folders' conftest modules never shadow each other)."""

from __future__ import annotations

import pytest

from xp_helpers import ConvToy, LinearToy, planted_data, take, toy_batch, toy_explainable, train_toy  # noqa: F401


@pytest.fixture
def linear_toy():
    model = LinearToy((1, 8, 8), groups=[[0, 1], [2]])
    return model, toy_explainable(model, groups=[[0, 1], [2]]), toy_batch(g=3)


@pytest.fixture(scope="session")
def trained_toy():
    """A ConvToy trained for a few seconds on 600 rows of the in-memory planted cohort; 200 more
    rows are held out (never trained on) for the quality tests.

    Returns ``(model, held_out_batch, held_out_y, held_out_truth)``.
    """
    import torch

    batch, y, truth = planted_data(n=800, size=16, seed=0)
    train = torch.arange(600)
    model = train_toy(ConvToy(centre=0.35, scale=10.0, kernel=5), take(batch, train), y[train], epochs=15,
                      batch_size=32)
    held = torch.arange(600, 800)
    return model, take(batch, held), y[held], {k: [v[i] for i in held.tolist()] for k, v in truth.items()}

"""Deletion / insertion curves, rank agreement, model randomisation (hand-checked pieces)."""

import numpy as np
import torch
from xp_helpers import LinearToy, toy_batch, toy_explainable

from clinfusion.explain.faithfulness import (
    curve_auc,
    perturbation_curves,
    randomized_copy,
    rank_agreement,
)


def test_curve_auc_trapezoid():
    curves = np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(curve_auc(curves), [0.5, 1.0])


def test_deletion_curve_steps_match_manual_deletion():
    model = LinearToy((1, 4, 4))
    ex, batch = toy_explainable(model), toy_batch(b=2, shape=(1, 4, 4))
    maps = torch.arange(16.0).flip(0).view(1, 4, 4).repeat(2, 1, 1)  # pixel 0 most important
    t = torch.zeros(2, dtype=torch.long)
    curves = perturbation_curves(ex, batch, t, maps, steps=4)
    assert curves["deletion"].shape == (2, 5)
    img = batch["image"].clone()
    img.view(2, -1)[:, :8] = 0.0  # half the pixels deleted at step 2, in map order
    from clinfusion.explain.common import forward_args

    with torch.no_grad():
        p = torch.sigmoid(model(img, *forward_args(batch)[1:]))[:, 0].numpy()
        p_zero = torch.sigmoid(model(torch.zeros_like(img), *forward_args(batch)[1:]))[:, 0].numpy()
    np.testing.assert_allclose(curves["deletion"][:, 2], p, rtol=1e-5)
    np.testing.assert_allclose(curves["deletion"][:, 4], p_zero, rtol=1e-5)
    np.testing.assert_allclose(curves["insertion"][:, 0], p_zero, rtol=1e-5)


def test_deleted_pixels_take_the_mean_reference():
    model = LinearToy((1, 4, 4))
    ex, batch = toy_explainable(model), toy_batch(b=2, shape=(1, 4, 4))
    maps = torch.arange(16.0).flip(0).view(1, 4, 4).repeat(2, 1, 1)
    t = torch.zeros(2, dtype=torch.long)
    curves = perturbation_curves(ex, batch, t, maps, steps=4, baseline="mean")
    img = batch["image"].clone()
    mean = img.view(2, -1).mean(1, keepdim=True)
    img.view(2, -1)[:, :8] = mean  # half the pixels replaced by the image's mean at step 2
    from clinfusion.explain.common import forward_args

    with torch.no_grad():
        p = torch.sigmoid(model(img, *forward_args(batch)[1:]))[:, 0].numpy()
    np.testing.assert_allclose(curves["deletion"][:, 2], p, rtol=1e-5)


def test_rank_agreement_values():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, np.nan]])
    b = np.array([[10.0, 20.0, 30.0, 40.0], [3.0, 2.0, 1.0, 0.0]])
    np.testing.assert_allclose(rank_agreement(a, b), [1.0, -1.0])


def test_randomized_copy_changes_every_weight_and_keeps_rng():
    model = LinearToy((1, 4, 4))
    state = torch.random.get_rng_state()
    rnd = randomized_copy(model, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, p), (_, q) in zip(model.named_parameters(), rnd.named_parameters()):
        assert p.numel() == 0 or not torch.equal(p, q), name
    again = randomized_copy(model, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(rnd.parameters(), again.parameters()))  # fixed seed

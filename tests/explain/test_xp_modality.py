"""Modality share by attribution mass and by ablation, vs hand computation on the linear toy."""

import numpy as np
import torch
from xp_helpers import LinearToy, toy_batch, toy_explainable

from clinfusion.config.schema import ExplainConfig
from clinfusion.explain.common import forward_args
from clinfusion.explain.image import explain_images
from clinfusion.datasets.transforms import remove_modality
from clinfusion.explain.modality import modality_share, neural_probs, share_summary
from clinfusion.explain.tabular import explain_table


def test_shares_match_hand_computation():
    model = LinearToy((1, 8, 8))
    ex, batch = toy_explainable(model), toy_batch()
    batch["modality_mask"][2, 0] = False  # sample 2 has no image
    batch["image"][2] = 0.0
    t = torch.zeros(3, dtype=torch.long)
    img = explain_images(ex, batch, t, ["integrated_gradients"], ExplainConfig(ig_steps=8))["integrated_gradients"]
    tab = explain_table(ex, batch, t, ["tabular_ig"], ExplainConfig(ig_steps=8))["tabular_ig"].values
    frame = modality_share(neural_probs(ex), batch, t, img, tab)

    a_img = img.abs().flatten(1).sum(1).numpy() * np.array([1, 1, 0])
    a_tab = np.abs(tab).sum(1)
    np.testing.assert_allclose(frame["image_share_attribution"], a_img / (a_img + a_tab), rtol=1e-5)
    assert frame.loc[2, "image_share_attribution"] == 0.0  # no image: no image share

    with torch.no_grad():
        p = torch.sigmoid(model(*forward_args(batch)))[:, 0].numpy()
        p_ni = torch.sigmoid(model(*forward_args(remove_modality(batch, "no_image"))))[:, 0].numpy()
        p_nt = torch.sigmoid(model(*forward_args(remove_modality(batch, "no_table"))))[:, 0].numpy()
    np.testing.assert_allclose(frame["delta_prob_no_image"], p - p_ni, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(frame["delta_prob_no_table"], p - p_nt, rtol=1e-5, atol=1e-7)
    d_i, d_t = np.abs(p - p_ni), np.abs(p - p_nt)
    np.testing.assert_allclose(frame["image_share_ablation"], d_i / (d_i + d_t), rtol=1e-5)
    assert list(frame["id"]) == ["s0", "s1", "s2"]


def test_remove_modality_leaves_input_untouched():
    batch = toy_batch()
    before = batch["num"].clone()
    out = remove_modality(batch, "no_table")
    assert out["num_missing"].all() and not out["modality_mask"][:, 1].any()
    assert torch.equal(batch["num"], before) and batch["modality_mask"].all()


def test_summary_statistics():
    import pandas as pd

    f = pd.DataFrame({"image_share_attribution": [0.2, 0.4, np.nan], "image_share_ablation": [0.1, 0.3, 0.5],
                      "delta_prob_no_image": [0.0, 0.1, 0.2], "delta_prob_no_table": [0.3, 0.3, 0.3]})
    s = share_summary(f)
    assert s["image_share_attribution"]["n"] == 2 and abs(s["image_share_attribution"]["mean"] - 0.3) < 1e-12
    assert abs(s["image_share_ablation"]["median"] - 0.3) < 1e-12

"""Quality bars on a planted cohort (toy FusedClassifier-like model trained for a few seconds).

Label = bright square in a known region AND marker (numeric column n0) > 0.
"""

import torch
from xp_helpers import toy_explainable

from clinfusion.config.schema import ExplainConfig
from clinfusion.explain.common import predict
from clinfusion.explain.faithfulness import deletion_insertion, randomization_check
from clinfusion.explain.global_views import rank_features
from clinfusion.explain.image import IMAGE_METHODS, explain_images
from clinfusion.explain.tabular import explain_table

CFG = ExplainConfig(ig_steps=16, faithfulness_steps=8)


def _positives(model, batch, y, n=16):
    ex = toy_explainable(model)
    _, _, p = predict(ex, batch)
    assert ((p > 0.5).float() == y).float().mean() > 0.9  # the toy learned the rule
    pos = torch.nonzero(y == 1)[:n, 0]
    sub = {k: (v[pos] if torch.is_tensor(v) else [v[i] for i in pos]) for k, v in batch.items()}
    return ex, sub, torch.zeros(len(pos), dtype=torch.long)


def test_pointing_game_marker_first_deletion_and_randomisation(trained_toy):
    model, batch, y, region = trained_toy
    ex, sub, t = _positives(model, batch, y)
    maps = explain_images(ex, sub, t, ["integrated_gradients", "occlusion", "gradcam"], CFG)
    (y0, y1), (x0, x1) = region
    for m, v in maps.items():  # pointing game: the map's maximum inside the planted region
        flat = v.flatten(1).argmax(1)
        r, c = flat // v.shape[2], flat % v.shape[2]
        hit = ((r >= y0) & (r < y1) & (c >= x0) & (c < x1)).float().mean().item()
        assert hit >= 0.8, (m, hit)

    tab = explain_table(ex, sub, t, ["tabular_ig", "feature_ablation"], CFG)
    for m, a in tab.items():
        assert rank_features(a.values, a.names)["feature"][0] == "n0", m  # the marker ranks first

    for m, v in maps.items():
        auc = deletion_insertion(ex, sub, t, v, CFG.faithfulness_steps, seed=0)
        assert auc["deletion"].mean() < auc["deletion_random"].mean(), m
        assert auc["insertion"].mean() > auc["insertion_random"].mean(), m

    res = randomization_check(ex, sub, t, maps, lambda e, m: IMAGE_METHODS.get(m)(e, sub, t, CFG))
    # Adebayo et al. 2018: maps of a re-initialised model must differ. IG and Grad-CAM pass the
    # 0.5 bar; occlusion on a max-pooled conv net still reacts to the bright patch of any
    # random filter bank (~0.5 here), so it is only required to be clearly below identity.
    assert res["integrated_gradients"]["changed"] and res["gradcam"]["changed"], res
    assert all(r["spearman_mean"] < 0.8 for r in res.values()), res

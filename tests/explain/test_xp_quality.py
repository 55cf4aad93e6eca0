"""Quality bars on the planted cohort, scored on HELD-OUT rows (a toy FusedClassifier-like model
trained for a few seconds on other rows of the same cohort).

Label = a faint disc at a random place and size AND the marker (numeric column n0) over a
noisy threshold, 4% labels flipped; n1 is a distractor correlated with the marker.
"""

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from xp_helpers import take, toy_explainable

from clinfusion.config.schema import ExplainConfig
from clinfusion.datasets.synthetic import blob_mask
from clinfusion.explain.common import predict
from clinfusion.explain.faithfulness import deletion_insertion, randomization_check
from clinfusion.explain.global_views import rank_features
from clinfusion.explain.image import IMAGE_METHODS, explain_images
from clinfusion.explain.tabular import explain_table

CFG = ExplainConfig(ig_steps=16, faithfulness_steps=8)


def _pointing(maps: torch.Tensor, truth, rows) -> float:
    """Share of images whose map maximum (|value|) lies in the planted disc (1 px tolerance)."""
    size = maps.shape[-1]
    hits = [blob_mask(truth["centre"][i], truth["radius"][i] + 1.0, size)[np.unravel_index(int(m.abs().argmax()), m.shape)]
            for m, i in zip(maps.reshape(len(rows), size, size), rows)]
    return float(np.mean(hits))


def test_pointing_game_marker_first_deletion_and_randomisation(trained_toy):
    model, batch, y, truth = trained_toy  # held-out rows only
    ex = toy_explainable(model)
    _, _, p = predict(ex, batch)
    assert roc_auc_score(y.numpy(), p.numpy()) > 0.85  # the toy learned the rule (oracle ~0.94)
    rows = [i for i in range(len(y)) if truth["pattern"][i] and y[i] == 1]  # held-out positives holding the disc
    sub, t = take(batch, rows), torch.zeros(len(rows), dtype=torch.long)
    maps = explain_images(ex, sub, t, ["integrated_gradients", "occlusion", "gradcam"], CFG)
    baseline = _pointing(sub["image"][:, 0], truth, rows)  # "map = input image" misses the faint disc
    random = _pointing(torch.rand_like(sub["image"][:, 0], generator=torch.Generator().manual_seed(0)), truth, rows)
    assert baseline < 0.7 and random < 0.3, (baseline, random)
    for m, v in maps.items():  # pointing game: the map's maximum inside the planted disc
        hit = _pointing(v, truth, rows)
        assert hit >= 0.8 and hit > baseline + 0.3, (m, hit, baseline)

    sub, t, maps = take(sub, list(range(16))), t[:16], {m: v[:16] for m, v in maps.items()}  # keep the rest fast
    tab = explain_table(ex, sub, t, ["tabular_ig", "feature_ablation"], CFG)
    for m, a in tab.items():
        assert rank_features(a.values, a.names)["feature"][0] == "n0", m  # the marker ranks first, not its proxy

    for m, v in maps.items():
        auc = deletion_insertion(ex, sub, t, v, CFG.faithfulness_steps, seed=0, baseline=CFG.image_baseline)
        assert auc["insertion"].mean() > auc["insertion_random"].mean() + 0.2, m
        # deleted pixels take the image's mean (the maps' own reference): removing the ranked pixels
        # first must lower the positive probability faster than removing random ones
        assert auc["deletion"].mean() < auc["deletion_random"].mean(), (m, auc["deletion"].mean(),
                                                                         auc["deletion_random"].mean())

    res = randomization_check(ex, sub, t, maps, lambda e, m: IMAGE_METHODS.get(m)(e, sub, t, CFG))
    # Adebayo et al. 2018: maps of a re-initialised model must differ. IG and Grad-CAM pass the
    # 0.5 bar; occlusion on a max-pooled conv net still reacts to bright patches of any
    # random filter bank, so it is only required to be clearly below identity.
    assert res["integrated_gradients"]["changed"] and res["gradcam"]["changed"], res
    assert all(r["spearman_mean"] < 0.8 for r in res.values()), res

"""masked_fused: loss on masked entries only; the fusion must carry the image to lower it."""

from __future__ import annotations

import torch

from clinfusion.config.schema import FusionConfig
from clinfusion.encoders.schema import TableSchema
from clinfusion.fusion import create_fusion
from clinfusion.objectives import MaskedFusedLoss, mask_features

SCHEMA = TableSchema(numeric=["a", "b"], categorical=["c"], cat_cardinalities=[3])


def test_loss_reads_masked_entries_only():
    torch.manual_seed(0)
    loss = MaskedFusedLoss(8, SCHEMA)
    fused, num, cat = torch.randn(4, 8), torch.randn(4, 2), torch.randint(1, 3, (4, 1))
    mask_num = torch.zeros(4, 2, dtype=torch.bool)
    mask_num[0, 1] = True
    mask_cat = torch.zeros(4, 1, dtype=torch.bool)
    base = loss(fused, num, cat, mask_num, mask_cat)["masked_fused_loss"]
    pred = loss.num_head(fused)
    torch.testing.assert_close(base, (pred[0, 1] - num[0, 1]) ** 2)
    other = num.clone()
    other[1:] += 5.0  # unmasked rows changed: same loss
    torch.testing.assert_close(loss(fused, other, cat, mask_num, mask_cat)["masked_fused_loss"], base)


def test_reconstruction_through_the_fusion_uses_the_image():
    """Feature ``a`` equals an image statistic and is masked from the table: only the image,
    passed through the fusion, can predict it."""
    g = torch.Generator().manual_seed(0)
    n = 64
    img = torch.randn(n, 6, generator=g)
    num = torch.stack([img[:, 0] * 1.5, torch.randn(n, generator=g)], 1)
    cat = torch.randint(1, 3, (n, 1), generator=g)
    torch.manual_seed(0)
    fusion = create_fusion(FusionConfig(name="concat", dim=16), 6, 4)
    loss_fn = MaskedFusedLoss(16, SCHEMA)
    table_enc = torch.nn.Linear(5, 4)  # sees the masked table (values zeroed + missing flags)
    params = list(fusion.parameters()) + list(loss_fn.parameters()) + list(table_enc.parameters())
    opt = torch.optim.Adam(params, lr=0.01)
    present = torch.ones(n, 2, dtype=torch.bool)

    def step(image, gen):
        m = mask_features(num, torch.zeros_like(num, dtype=torch.bool), cat, torch.zeros_like(cat, dtype=torch.bool),
                          0.5, generator=gen)
        tab = table_enc(torch.cat([m["num"], m["num_missing"].float(), m["cat"].float()], 1))
        fused = fusion(image, tab, present)
        mask_num = m["mask_num"] & torch.tensor([True, False])  # score the image-borne feature only
        return loss_fn(fused, num, cat, mask_num, torch.zeros_like(m["mask_cat"]))["masked_fused_loss"]

    gen = torch.Generator().manual_seed(1)
    first = float(step(img, gen))
    for _ in range(200):
        opt.zero_grad()
        loss = step(img, gen)
        loss.backward()
        opt.step()
    with torch.no_grad():
        trained = float(step(img, torch.Generator().manual_seed(7)))
        shuffled = float(step(img[torch.randperm(n, generator=g)], torch.Generator().manual_seed(7)))
    assert trained < 0.25 * first  # it learned to read feature a off the image
    assert shuffled > 4 * trained  # and it is the image that carries it (other images: much worse)


def test_categorical_layout_places_each_feature_in_its_own_logits():
    from clinfusion.objectives.masked_features import categorical_layout

    offsets, own = categorical_layout([2, 3])  # feature 0: logits 0-1, feature 1: logits 2-4
    assert offsets.tolist() == [0, 2]
    assert own.tolist() == [[True, True, False, False, False], [False, False, True, True, True]]
    offsets, own = categorical_layout([])  # no categorical column: an empty layout over one dummy logit
    assert offsets.numel() == 0 and tuple(own.shape) == (0, 1)

"""ITM: hardest negatives by hand, the loss's target layout, gradients reaching the fusion."""

from __future__ import annotations

import torch

from clinfusion.config.schema import FusionConfig
from clinfusion.fusion import create_fusion
from clinfusion.objectives import ItmLoss, hardest_negatives


def test_hardest_negatives_pick_the_most_similar_allowed_column():
    sim = torch.tensor([[0.9, 0.8, 0.1, 0.7],
                        [0.2, 0.5, 0.6, 0.3],
                        [0.4, 0.95, 0.9, 0.1]])
    allowed = ~torch.eye(3, 4, dtype=torch.bool)  # own pair on the diagonal
    allowed[2, 1] = False  # same patient as anchor 2
    # row 0: 0.8 (col 1) beats 0.7 and 0.1; row 1: 0.6 (col 2); row 2: col 1 banned -> 0.4 (col 0)
    assert hardest_negatives(sim, allowed).tolist() == [1, 2, 0]
    none = torch.zeros(1, 4, dtype=torch.bool)
    assert hardest_negatives(sim[:1], none).tolist() == [-1]


def test_itm_negatives_skip_own_pair_same_patient_and_invalid_rows():
    # 4 rows on a circle; image i is closest to table i, then to table (i+1) % 4
    ang = torch.tensor([0.0, 1.0, 2.0, 3.0]) * (torch.pi / 2)
    img = torch.stack([ang.cos(), ang.sin()], 1)
    tab = torch.stack([(ang + 0.5).cos(), (ang + 0.5).sin()], 1)
    itm = ItmLoss(4, gather=False)
    group = torch.tensor([0, 1, 2, 3])
    neg = itm.negatives(img, tab, torch.ones(4, dtype=torch.bool), group, gather=False)
    sims = img @ tab.T  # hand check: row i's best non-own column is i-1 (tab rotated +0.5 rad)
    expect = [max((c for c in range(4) if c != i), key=lambda c: float(sims[i, c])) for i in range(4)]
    assert neg["table"].tolist() == expect == [3, 0, 1, 2]
    group = torch.tensor([0, 0, 2, 3])  # rows 0 and 1: one patient -> never each other's negative
    valid = torch.tensor([True, True, True, False])  # row 3: no pair -> neither anchor nor negative
    neg = itm.negatives(img, tab, valid, group, gather=False)
    assert neg["table"][3] == -1 and 3 not in neg["table"].tolist() and 3 not in neg["image"].tolist()
    assert neg["table"][1] != 0 and neg["table"][0] != 1 and neg["image"][0] != 1


def _fusion(di=5, dt=4, dim=6):
    torch.manual_seed(0)
    return create_fusion(FusionConfig(name="concat", dim=dim), di, dt)


def test_itm_loss_is_cross_entropy_over_one_match_two_hard_negatives():
    fusion, itm = _fusion(), ItmLoss(6, gather=False)
    g = torch.Generator().manual_seed(1)
    ie, te = torch.randn(4, 5, generator=g), torch.randn(4, 4, generator=g)
    ip, tp = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    out = itm(fusion, ie, te, ip, tp)
    neg = itm.negatives(ip, tp, torch.ones(4, dtype=torch.bool), torch.arange(4), gather=False)
    ones = torch.ones(4, 2, dtype=torch.bool)
    logits = torch.cat([itm.head(fusion(ie, te, ones)), itm.head(fusion(ie, te[neg["table"]], ones)),
                        itm.head(fusion(ie[neg["image"]], te, ones))])
    target = torch.tensor([1] * 4 + [0] * 8)
    torch.testing.assert_close(out["itm_loss"], torch.nn.functional.cross_entropy(logits, target))
    assert float(out["itm_acc"]) == float((logits.argmax(1) == target).float().mean())


def test_itm_gradient_reaches_the_fusion_and_training_separates_pairs():
    fusion, itm = _fusion(), ItmLoss(6, gather=False)
    g = torch.Generator().manual_seed(2)
    ie, te = torch.randn(16, 5, generator=g), torch.randn(16, 4, generator=g)
    te[:, :2] = ie[:, :2]  # a match is visible only when both inputs are combined
    out = itm(fusion, ie, te, ie[:, :3], te[:, :3])
    out["itm_loss"].backward()
    # the mlp's output layer starts at zero: it (and the skip path) get the first gradient, its first layer the next
    first_grads = [fusion.skip.weight.grad, *(p.grad for p in fusion.mlp[-1].parameters())]
    assert all(g is not None and g.abs().sum() > 0 for g in first_grads)
    start = [p.detach().clone() for p in fusion.mlp.parameters()]
    opt = torch.optim.Adam(list(fusion.parameters()) + list(itm.parameters()), lr=0.02)
    first = float(out["itm_loss"].detach())
    for _ in range(150):
        opt.zero_grad()
        out = itm(fusion, ie, te, ie[:, :3], te[:, :3])
        out["itm_loss"].backward()
        opt.step()
    assert float(out["itm_loss"].detach()) < 0.5 * first
    assert float(out["itm_acc"]) > 0.9  # always "no match" would score 2/3
    assert all(not torch.equal(a, p) for a, p in zip(start, fusion.mlp.parameters()))  # every mlp layer learnt

"""Each loss against an independent reference written with explicit Python loops."""

import math

import pytest
import torch

from clinfusion.encoders.schema import TableSchema
from clinfusion.objectives import (
    EMA, BYOLLoss, ClipLoss, LogitScale, MaskedFeatureLoss, NTXentLoss, ScarfLoss, gather_with_grad,
    mask_features, scarf_corrupt,
)


def _unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _neg_log_softmax(scores, target):
    """-log(exp(s_t) / sum_j exp(s_j)) over the candidate dict/list ``scores``."""
    return -(scores[target] - math.log(sum(math.exp(s) for s in scores)))


def _rows(t):
    return [_unit(r) for r in t.tolist()]


def test_clip_loss_matches_loops_with_invalid_rows():
    torch.manual_seed(0)
    img, tab = torch.randn(5, 4), torch.randn(5, 4)
    valid = torch.tensor([True, True, False, True, True])
    scale = 3.0
    out = ClipLoss()(img, tab, torch.tensor(scale), valid)["clip_loss"]
    I, T = _rows(img), _rows(tab)
    keep = [i for i in range(5) if valid[i]]
    total = 0.0
    for i in keep:
        s_it = [scale * _dot(I[i], T[j]) for j in keep]
        s_ti = [scale * _dot(T[i], I[j]) for j in keep]
        total += (_neg_log_softmax(s_it, keep.index(i)) + _neg_log_softmax(s_ti, keep.index(i))) / 2
    assert out.item() == pytest.approx(total / len(keep), abs=1e-5)
    # no valid row: zero loss, still a graph
    z = ClipLoss()(img.requires_grad_(), tab, torch.tensor(scale), torch.zeros(5, dtype=torch.bool))["clip_loss"]
    assert z.item() == 0.0 and z.requires_grad


def test_clip_invalid_row_values_do_not_matter():
    img, tab, valid = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([True, False, True, True])
    a = ClipLoss()(img, tab, torch.tensor(10.0), valid)["clip_loss"]
    img2 = img.clone()
    img2[1] = torch.randn(3) * 100
    assert torch.allclose(a, ClipLoss()(img2, tab, torch.tensor(10.0), valid)["clip_loss"])


def test_logit_scale_init_and_clamp():
    ls = LogitScale(0.07, 100.0)
    assert ls().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        ls.log_scale.fill_(10.0)
    assert ls().item() == pytest.approx(100.0)


def test_ntxent_matches_loops():
    torch.manual_seed(1)
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    t = 0.5
    out = NTXentLoss(t)(z1, z2)["simclr_loss"]
    Z = _rows(torch.cat([z1, z2]))
    n = 4
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        cands = [k for k in range(2 * n) if k != a]
        scores = [_dot(Z[a], Z[k]) / t for k in cands]
        total += _neg_log_softmax(scores, cands.index(pos))
    assert out.item() == pytest.approx(total / (2 * n), abs=1e-5)


def test_scarf_loss_matches_loops():
    torch.manual_seed(2)
    a, p = torch.randn(5, 3), torch.randn(5, 3)
    t = 0.7
    out = ScarfLoss(t)(a, p)["scarf_loss"]
    A, P = _rows(a), _rows(p)
    ref = sum(_neg_log_softmax([_dot(A[i], P[j]) / t for j in range(5)], i) for i in range(5)) / 5
    assert out.item() == pytest.approx(ref, abs=1e-5)


def test_byol_loss_and_target_detached():
    q = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    out = BYOLLoss()(q, z)["byol_loss"]
    ref = sum(2 - 2 * _dot(_unit(a), _unit(b)) for a, b in zip(q.tolist(), z.tolist())) / 3
    assert out.item() == pytest.approx(ref, abs=1e-5)
    out.backward()
    assert q.grad is not None and z.grad is None


def test_ema_update_rule_and_buffers():
    online = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(online, decay=0.9)
    t0 = ema.target[0].weight.clone()
    with torch.no_grad():
        online[0].weight.add_(1.0)
    online(torch.randn(4, 2))  # updates BN running stats
    ema.update()
    torch.testing.assert_close(ema.target[0].weight, 0.9 * t0 + 0.1 * online[0].weight)
    torch.testing.assert_close(ema.target[1].running_mean, online[1].running_mean)
    assert not any(p.requires_grad for p in ema.target.parameters())
    assert "_online" not in dict(ema.named_modules())


def test_gather_is_identity_on_one_process():
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x


def test_scarf_corrupt_uses_column_marginals():
    g = torch.Generator().manual_seed(0)
    b = 64
    num = torch.arange(b, dtype=torch.float32)[:, None] * torch.tensor([1.0, 1000.0])  # column-specific values
    num_missing = torch.zeros(b, 2, dtype=torch.bool)
    num_missing[0, 0] = True
    cat = torch.arange(b)[:, None].repeat(1, 3) % 5
    cat_missing = torch.zeros(b, 3, dtype=torch.bool)
    orig = num.clone()
    out = scarf_corrupt(num, num_missing, cat, cat_missing, rate=0.6, generator=g,
                        omics=torch.randn(b, 7), omics_missing=torch.zeros(b, 7, dtype=torch.bool))
    assert torch.equal(num, orig)  # input untouched
    assert set(out) == {"num", "num_missing", "cat", "cat_missing", "omics", "omics_missing"}
    changed = (out["num"] != num).float().mean().item()
    assert 0.4 < changed < 0.75  # ~ rate * (1 - 1/B)
    # every corrupted value comes from the same column of some row
    assert set(out["num"][:, 1].tolist()) <= set(num[:, 1].tolist())
    assert set(out["num"][:, 0].tolist()) <= set(num[:, 0].tolist())
    # a missing flag travels with its value: value 0 in column 0 came from row 0 (missing)
    from_row0 = out["num"][:, 0] == 0
    assert torch.equal(out["num_missing"][:, 0], from_row0)
    same = scarf_corrupt(num, num_missing, cat, cat_missing, rate=0.0)
    assert torch.equal(same["num"], num) and torch.equal(same["cat"], cat)


def test_mask_features_and_masked_feature_loss_reference():
    torch.manual_seed(3)
    schema = TableSchema(numeric=["a", "b"], categorical=["c", "d"], cat_cardinalities=[3, 4])
    b, h = 6, 5
    num, cat = torch.randn(b, 2), torch.stack([torch.randint(0, 3, (b,)), torch.randint(0, 4, (b,))], 1)
    num_missing = torch.zeros(b, 2, dtype=torch.bool)
    num_missing[0, 0] = True
    cat_missing = torch.zeros(b, 2, dtype=torch.bool)
    m = mask_features(num, num_missing, cat, cat_missing, 0.5, generator=torch.Generator().manual_seed(1))
    assert not (m["mask_num"] & num_missing).any()  # never targets an already-missing value
    assert torch.equal(m["num_missing"], num_missing | m["mask_num"])
    assert (m["num"][m["mask_num"]] == 0).all() and (m["cat"][m["mask_cat"]] == 0).all()
    assert m["mask_num"].any() and m["mask_cat"].any()

    loss_fn = MaskedFeatureLoss(h, schema)
    tokens = torch.randn(b, 1 + 4, h)
    out = loss_fn(tokens, num, cat, m["mask_num"], m["mask_cat"])["masked_features_loss"]
    W, bias = loss_fn.num_weight.tolist(), loss_fn.num_bias.tolist()
    sq = []
    for i in range(b):
        for f in range(2):
            if m["mask_num"][i, f]:
                pred = _dot(tokens[i, 1 + f].tolist(), W[f]) + bias[f]
                sq.append((pred - num[i, f].item()) ** 2)
    offs, cards = [0, 3], [3, 4]
    ce = []
    for i in range(b):
        for f in range(2):
            if m["mask_cat"][i, f]:
                full = loss_fn.cat_head(tokens[i, 3 + f]).tolist()
                own = full[offs[f]: offs[f] + cards[f]]
                ce.append(_neg_log_softmax(own, int(cat[i, f])))
    ref = sum(sq) / len(sq) + sum(ce) / len(ce)
    assert out.item() == pytest.approx(ref, abs=1e-5)


def test_masked_feature_loss_nothing_masked_is_zero():
    schema = TableSchema(numeric=["a"], categorical=[], cat_cardinalities=[])
    lf = MaskedFeatureLoss(4, schema)
    out = lf(torch.randn(2, 2, 4), torch.randn(2, 1), torch.zeros(2, 0, dtype=torch.long),
             torch.zeros(2, 1, dtype=torch.bool), torch.zeros(2, 0, dtype=torch.bool))
    assert out["masked_features_loss"].item() == 0.0


def test_shape_errors_quote_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(2, 4\)"):
        ClipLoss()(torch.randn(3, 4), torch.randn(2, 4), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3, 5\)"):
        NTXentLoss()(torch.randn(3, 4), torch.randn(3, 5))

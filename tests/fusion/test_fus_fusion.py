"""Fusions: shapes, the missing-modality embedding, finiteness, gates; modality dropout."""

import pytest
import torch

from clinfusion.config.schema import FusionConfig
from clinfusion.errors import ConfigError
from clinfusion.fusion import ModalityDropout, create_fusion, list_fusions

DI, DT, DIM = 8, 6, 16
MASK = torch.tensor([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=torch.bool)


def _fusion(name):
    torch.manual_seed(0)
    return create_fusion(FusionConfig(name=name, dim=DIM, num_heads=2), DI, DT).eval()


def test_list_fusions():
    assert list_fusions() == ["concat", "cross_attention", "gated"]


def test_unknown_fusion_name():
    cfg = FusionConfig.model_construct(name="sum", dim=8, num_heads=2)
    with pytest.raises(ConfigError, match="unknown fusion 'sum'.*concat"):
        create_fusion(cfg, DI, DT)


@pytest.mark.parametrize("name", list_fusions())
def test_masked_input_does_not_change_output(name):
    f = _fusion(name)
    img, tab = torch.randn(4, DI), torch.randn(4, DT)
    out = f(img, tab, MASK)
    assert out.shape == (4, DIM) and torch.isfinite(out).all()
    img2, tab2 = img.clone(), tab.clone()
    img2[2:] = 1e3 * torch.randn(2, DI)  # rows 2, 3 have no image
    tab2[[1, 3]] = 1e3 * torch.randn(2, DT)  # rows 1, 3 have no table
    torch.testing.assert_close(f(img2, tab2, MASK), out)
    # a present modality does matter
    img3 = img.clone()
    img3[0] += 1.0
    assert not torch.allclose(f(img3, tab, MASK)[0], out[0])
    # inputs untouched
    assert torch.equal(img2[:2], img[:2])


@pytest.mark.parametrize("name", list_fusions())
def test_every_parameter_trains(name):
    """Every parameter gets a gradient by the second step (concat's zero-initialised last mlp
    layer holds back its first layer for exactly one step)."""
    f = _fusion(name).train()
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    img, tab = torch.randn(4, DI), torch.randn(4, DT)
    for _ in range(2):
        opt.zero_grad()
        f(img, tab, MASK).sub(1.0).square().sum().backward()
        opt.step()
    assert [k for k, p in f.named_parameters() if p.grad is None or p.grad.abs().sum() == 0] == []


def test_both_missing_row_is_missing_embedding_fused():
    """A row with no modality equals the fusion of the two learned missing embeddings."""
    f = _fusion("concat")
    out = f(torch.randn(1, DI), torch.randn(1, DT), torch.zeros(1, 2, dtype=torch.bool))
    x = torch.cat([f.missing_image, f.missing_table])[None]
    torch.testing.assert_close(out, f.skip(x) + f.mlp(x))


def test_untrained_concat_fusion_is_the_concatenation():
    """At initialisation the fused output IS the concatenation [img; tab; 0] when dim >= Di + Dt
    (isometric skip path, zero-initialised mlp output), so a probe on an untrained fusion sees
    exactly what a probe on the concatenation sees; the norm-keeping orthogonal map otherwise.
    Once trained, the mlp adds interactions on top."""
    from clinfusion.config.schema import FusionConfig
    from clinfusion.fusion.concat import ConcatFusion

    torch.manual_seed(0)
    img, tab = torch.randn(5, DI), torch.randn(5, DT)
    ones = torch.ones(5, 2, dtype=torch.bool)
    wide = ConcatFusion(FusionConfig(dim=DI + DT + 3), DI, DT)
    out = wide(img, tab, ones)
    torch.testing.assert_close(out[:, :DI], img)
    torch.testing.assert_close(out[:, DI:DI + DT], tab)
    assert torch.equal(out[:, DI + DT:], torch.zeros(5, 3))
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    for _ in range(3):  # fit a target the skip path alone cannot: the mlp must leave zero
        opt.zero_grad()
        (wide(img, tab, ones)[:, -1] - img[:, 0] * tab[:, 0]).square().mean().backward()
        opt.step()
    assert wide.mlp(torch.cat([img, tab], 1)).abs().max() > 1e-3
    narrow = ConcatFusion(FusionConfig(dim=(DI + DT) // 2), DI, DT)
    w = narrow.skip.weight
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-5, rtol=0)


def test_gated_is_convex_combination_of_branches():
    f = _fusion("gated")
    img, tab = torch.randn(4, DI), torch.randn(4, DT)
    m = torch.ones(4, 2, dtype=torch.bool)
    z = torch.sigmoid(f.gate(torch.cat([img, tab], 1)))
    ref = z * torch.tanh(f.proj_image(img)) + (1 - z) * torch.tanh(f.proj_table(tab))
    torch.testing.assert_close(f(img, tab, m), ref)
    torch.testing.assert_close(f.gates(img, tab, m), z)
    assert z.shape == (4, DIM)


def test_cross_attention_heads_must_divide():
    with pytest.raises(ConfigError, match="num_heads: 3 does not divide model.fusion.dim 16"):
        create_fusion(FusionConfig(name="cross_attention", dim=16, num_heads=3), DI, DT)


def test_bad_shapes_quote_them():
    with pytest.raises(ValueError, match=r"img \[B, 8\].*got \(4, 7\)"):
        _fusion("concat")(torch.randn(4, 7), torch.randn(4, DT), MASK)


def test_modality_dropout_never_drops_both_and_identity_in_eval():
    md = ModalityDropout(0.5)
    mask = torch.ones(2000, 2, dtype=torch.bool)
    mask[:500, 0] = False  # table-only rows keep their table
    g = torch.Generator().manual_seed(0)
    out = md.train()(mask, generator=g)
    assert out.any(dim=1).all()
    assert out[:500, 1].all() and not out[:500, 0].any()
    assert not (out & ~mask).any()  # never adds a modality
    dropped = (~out[500:]).float().mean(0)  # P(drop one) = p(1-p) = 0.25 per modality
    assert torch.allclose(dropped, torch.full((2,), 0.25), atol=0.04)
    none = torch.zeros(3, 2, dtype=torch.bool)
    assert torch.equal(md(none), none)
    assert torch.equal(md.eval()(mask), mask)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        ModalityDropout(1.0)

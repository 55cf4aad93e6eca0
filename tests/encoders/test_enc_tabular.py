"""Feature tokenizer and tabular transformer: token counts, missing tokens, omics grouping."""

import pytest
import torch

from clinfusion.config.schema import TabularEncoderConfig
from clinfusion.encoders.schema import TableSchema
from clinfusion.encoders.tabular import TabularEncoder
from clinfusion.encoders.tokenizer import FeatureTokenizer
from clinfusion.errors import ConfigError, DataError

CFG = TabularEncoderConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, dropout=0.0,
                           omics_chunk_size=256)


def _schema(g=0, groups=None, names=None):
    return TableSchema(numeric=["age", "bmi", "marker"], categorical=["sex", "site"], cat_cardinalities=[3, 5],
                       omics_columns=[f"g{i}" for i in range(g)], omics_groups=groups or [],
                       group_names=names or [])


def _batch(b, s, seed=0, miss_rate=0.0):
    g = torch.Generator().manual_seed(seed)
    f, c, n = s.n_num, s.n_cat, s.n_omics
    return dict(
        num=torch.randn(b, f, generator=g), num_missing=torch.zeros(b, f, dtype=torch.bool),
        cat=torch.stack([torch.randint(0, k, (b,), generator=g) for k in s.cat_cardinalities], 1)
        if c else torch.zeros(b, 0, dtype=torch.long),
        cat_missing=torch.zeros(b, c, dtype=torch.bool),
        omics=torch.randn(b, n, generator=g), omics_missing=torch.rand(b, n, generator=g) < miss_rate,
    )


def test_5000_omics_columns_chunk_256_token_count_and_one_training_step():
    torch.manual_seed(0)
    s = _schema(5000)
    enc = TabularEncoder(CFG, s).train()
    batch = _batch(4, s, miss_rate=0.1)
    toks = enc.forward_tokens(**batch)
    assert toks.shape == (4, 1 + 5 + 20, 16)  # ceil(5000 / 256) = 20 omics tokens
    assert enc.token_names[:5] == ["age", "bmi", "marker", "sex", "site"]
    assert enc.token_names[5] == "omics[0:256]" and enc.token_names[-1] == "omics[4864:5000]"
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    before = enc.tokenizer.omics_weight.detach().clone()
    enc(**batch).square().mean().backward()
    assert [k for k, p in enc.named_parameters() if p.grad is None] == []
    opt.step()
    assert not torch.equal(before, enc.tokenizer.omics_weight)


def test_20000_omics_columns_batch_4():
    s = _schema(20000)
    enc = TabularEncoder(CFG, s).eval()
    with torch.no_grad():
        toks = enc.forward_tokens(**_batch(4, s))
    assert toks.shape == (4, 1 + 5 + 79, 16)  # ceil(20000 / 256) = 79
    assert len(enc.token_names) == 84


def test_numeric_token_is_affine_per_feature():
    s = _schema()
    tok = FeatureTokenizer(s, 8)
    b = _batch(2, s)
    out = tok(**b)
    ref = b["num"][:, 1, None] * tok.num_weight[1] + tok.num_bias[1] + tok.position[1] + tok.type_embed.weight[0]
    torch.testing.assert_close(out[:, 1], ref)
    # categorical: feature 'site' (index 1) value v uses row offset 3 + v of the shared table
    ref_cat = tok.cat_embed.weight[3 + b["cat"][:, 1]] + tok.position[4] + tok.type_embed.weight[1]
    torch.testing.assert_close(out[:, 4], ref_cat)


def test_missing_values_use_missing_token_and_do_not_change_output():
    torch.manual_seed(0)
    s = _schema(300)
    enc = TabularEncoder(CFG, s).eval()
    b = _batch(3, s)
    b["num_missing"][0, 1] = True
    b["cat_missing"][1, 0] = True
    b["omics_missing"][2, 256:] = True  # the whole second chunk of row 2
    b["omics_missing"][0, :10] = True  # part of the first chunk of row 0
    out = enc(**b)
    b2 = {k: v.clone() for k, v in b.items()}
    b2["num"][0, 1] = 1e4
    b2["cat"][1, 0] = 2
    b2["omics"][2, 256:] = -1e4
    b2["omics"][0, :10] = 1e4
    torch.testing.assert_close(enc(**b2), out)
    toks = enc.token_embeddings(**b)
    tk = enc.tokenizer
    torch.testing.assert_close(toks[0, 1], tk.num_missing_token[1] + tk.position[1] + tk.type_embed.weight[0])
    torch.testing.assert_close(toks[2, 6], tk.omics_missing_token[1] + tk.position[6] + tk.type_embed.weight[2])
    # an observed value does change the output
    b2["num"][1, 1] = 5.0
    assert not torch.allclose(enc(**b2)[1], out[1])


def test_partially_missing_omics_group_is_rescaled_mean_of_observed():
    s = _schema(4)
    tok = FeatureTokenizer(s, 8, "chunk", chunk_size=4)
    b = _batch(1, s)
    b["omics_missing"][0, 1] = True
    out = tok(**b)[0, 5] - tok.position[5] - tok.type_embed.weight[2]
    w = tok.omics_weight[0]
    obs = [0, 2, 3]
    ref = sum(b["omics"][0, j] * w[j] for j in obs) * (4 / 3) + tok.omics_bias[0]
    torch.testing.assert_close(out, ref)


def test_gene_sets_grouping_with_variable_sizes():
    s = _schema(10, groups=[[0, 1, 2], [5], [3, 4, 6, 7, 8, 9]], names=["TP53", "MYC", "KRAS"])
    cfg = CFG.model_copy(update={"omics_grouping": "gene_sets"})
    enc = TabularEncoder(cfg, s)
    assert enc.token_names[5:] == ["TP53", "MYC", "KRAS"]
    b = _batch(2, s)
    assert enc.forward_tokens(**b).shape == (2, 1 + 5 + 3, 16)
    tk = enc.tokenizer
    out = tk(**b)[:, 6] - tk.position[6] - tk.type_embed.weight[2]  # MYC: the single column 5
    torch.testing.assert_close(out, b["omics"][:, 5, None] * tk.omics_weight[1, 0] + tk.omics_bias[1])


def test_auto_grouping_uses_the_gene_sets_when_the_cohort_has_them_else_chunks():
    grouped = _schema(10, groups=[[0, 1, 2], [5], [3, 4, 6, 7, 8, 9]], names=["TP53", "MYC", "KRAS"])
    cfg = CFG.model_copy(update={"omics_grouping": "auto", "omics_chunk_size": 4})
    assert TabularEncoder(cfg, grouped).token_names[5:] == ["TP53", "MYC", "KRAS"]
    assert TabularEncoder(cfg, _schema(10)).token_names[5:] == ["omics[0:4]", "omics[4:8]", "omics[8:10]"]


def test_gene_sets_without_groups_is_config_error():
    cfg = CFG.model_copy(update={"omics_grouping": "gene_sets"})
    with pytest.raises(ConfigError, match="gene_sets' needs cohort.omics.gene_sets"):
        TabularEncoder(cfg, _schema(10))


@pytest.mark.parametrize("kind", ["numeric_only", "categorical_only", "omics_only"])
def test_empty_blocks(kind):
    s = {"numeric_only": TableSchema(numeric=["a"]),
         "categorical_only": TableSchema(categorical=["c"], cat_cardinalities=[4]),
         "omics_only": TableSchema(omics_columns=["x", "y", "z"])}[kind]
    enc = TabularEncoder(CFG, s).eval()
    b = _batch(2, s)
    out = enc.forward_tokens(**b)
    assert out.shape == (2, 2, 16) and torch.isfinite(out).all()
    # the one block's token, and the embedding, follow its values (a block that ignored them would not move)
    key = {"numeric_only": "num", "categorical_only": "cat", "omics_only": "omics"}[kind]
    other = dict(b, **{key: (b[key] + 1) % 4 if key == "cat" else b[key] + 1.0})
    with torch.no_grad():
        assert not torch.allclose(enc.forward_tokens(**other)[:, 1], enc.forward_tokens(**b)[:, 1])
        assert not torch.allclose(enc(**other), enc(**b))


def test_forward_from_tokens_matches_forward_and_checkpointing():
    torch.manual_seed(0)
    s = _schema(40)
    enc = TabularEncoder(CFG, s).eval()
    b = _batch(2, s)
    torch.testing.assert_close(enc.forward_from_tokens(enc.token_embeddings(**b)), enc(**b))
    enc.train()
    g1 = torch.autograd.grad(enc(**b).sum(), enc.tokenizer.num_weight)[0]
    enc.set_grad_checkpointing(True)
    g2 = torch.autograd.grad(enc(**b).sum(), enc.tokenizer.num_weight)[0]
    torch.testing.assert_close(g1, g2)


def test_bad_inputs_name_column_and_shape():
    s = _schema()
    enc = TabularEncoder(CFG, s)
    b = _batch(2, s)
    b["cat"] = b["cat"].clone()
    b["cat"][1, 1] = 7
    with pytest.raises(DataError, match=r"categorical column 'site': index outside 0..4"):
        enc(**b)
    b = _batch(2, s)
    b["num"] = torch.randn(2, 4)
    with pytest.raises(DataError, match=r"'num': expected \[B, 3\].*got \(2, 4\)"):
        enc(**b)
    with pytest.raises(ConfigError, match="num_heads: 3 does not divide hidden_size 16"):
        TabularEncoder(CFG.model_copy(update={"num_heads": 3}), s)

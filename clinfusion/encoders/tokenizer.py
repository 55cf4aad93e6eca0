"""Turn one table row (clinical + omics) into a short sequence of tokens ``[B, T, H]``.

Numeric features get their own linear projection and categorical features their own
embedding table (FT-Transformer's feature tokenizer, Gorishniy et al. 2021). Thousands
of omics columns are grouped so the sequence stays short: contiguous chunks of
``chunk_size`` columns, or the gene sets of ``schema.omics_groups``; each group has its
own projection ``[size, H]`` (a "gene-set token", cf. Chen et al. 2022 / SNN-style
pathway tokens). Missing values never reach a projection: a missing numeric /
categorical value is replaced by a learned per-feature *missing token*; missing omics
values are masked out of their group's projection (rescaled by the observed count) and
a group with nothing observed becomes its learned missing token.

Token order: ``numeric (F_num) | categorical (F_cat) | omics groups (n_groups)``.
"""

from __future__ import annotations

import math
from typing import List, Literal, Tuple

import torch
from torch import Tensor, nn

from clinfusion.encoders.schema import TableSchema
from clinfusion.errors import ConfigError, DataError

NUM, CAT, OMICS = 0, 1, 2  # token types


def _param(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


class FeatureTokenizer(nn.Module):
    """Clinical + omics row -> tokens.

    Args:
        schema: columns and categorical cardinalities (index 0 = unknown).
        hidden: token width ``H``.
        omics_grouping: ``"chunk"`` (contiguous ``chunk_size`` columns), ``"gene_sets"``
            (``schema.omics_groups``) or ``"auto"`` (gene sets when the schema has them, else chunks).
        chunk_size: columns per chunk.

    Shapes (forward): ``num [B, F_num] float``, ``num_missing [B, F_num] bool``,
    ``cat [B, F_cat] int``, ``cat_missing [B, F_cat] bool``, ``omics [B, G] float``,
    ``omics_missing [B, G] bool`` -> ``[B, T, H]`` with ``T = F_num + F_cat + n_groups``.
    """

    def __init__(self, schema: TableSchema, hidden: int,
                 omics_grouping: Literal["auto", "chunk", "gene_sets"] = "auto", chunk_size: int = 256) -> None:
        super().__init__()
        self.schema, self.hidden = schema, hidden
        f_num, f_cat, g = schema.n_num, schema.n_cat, schema.n_omics
        if len(schema.cat_cardinalities) != f_cat:
            raise ConfigError(
                f"preprocessing schema: {f_cat} categorical columns but {len(schema.cat_cardinalities)} cardinalities"
            )
        # numeric: token = x * w[f] + b[f]
        self.num_weight = _param(f_num, hidden, std=1.0 / math.sqrt(hidden))
        self.num_bias = _param(f_num, hidden, std=0.02)
        self.num_missing_token = _param(f_num, hidden, std=0.02)
        # categorical: one table, feature f uses rows offsets[f] .. offsets[f] + card[f] - 1
        cards = [int(c) for c in schema.cat_cardinalities]
        self.cat_embed = nn.Embedding(max(sum(cards), 1), hidden)
        nn.init.normal_(self.cat_embed.weight, std=0.02)
        self.register_buffer("cat_offsets", torch.tensor([0] + cards[:-1], dtype=torch.long).cumsum(0)[:f_cat]
                             if f_cat else torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("cat_cards", torch.tensor(cards, dtype=torch.long), persistent=False)
        self.cat_missing_token = _param(f_cat, hidden, std=0.02)
        # omics groups: index [n_groups, M] into the G columns, valid [n_groups, M]
        index, valid, names = self._groups(schema, omics_grouping, chunk_size)
        self.register_buffer("omics_index", index, persistent=False)
        self.register_buffer("omics_valid", valid, persistent=False)
        n_groups, m = index.shape
        self.omics_weight = _param(n_groups, m, hidden, std=1.0 / math.sqrt(max(m, 1)))
        self.omics_bias = _param(n_groups, hidden, std=0.02)
        self.omics_missing_token = _param(n_groups, hidden, std=0.02)
        # per-token position and type embeddings
        self.token_names: List[str] = list(schema.numeric) + list(schema.categorical) + names
        self.n_tokens = len(self.token_names)
        self.position = _param(self.n_tokens, hidden, std=0.02)
        self.type_embed = nn.Embedding(3, hidden)
        nn.init.normal_(self.type_embed.weight, std=0.02)
        types = [NUM] * f_num + [CAT] * f_cat + [OMICS] * n_groups
        self.register_buffer("token_types", torch.tensor(types, dtype=torch.long), persistent=False)

    @staticmethod
    def _groups(schema: TableSchema, grouping: str, chunk: int) -> Tuple[Tensor, Tensor, List[str]]:
        g = schema.n_omics
        if g == 0:
            return torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.bool), []
        if grouping == "auto":  # a gene-set file given in cohort.omics is used; without one, chunks
            grouping = "gene_sets" if len(schema.omics_groups) else "chunk"
        if grouping == "chunk":
            if chunk < 1:
                raise ConfigError(f"model.tabular_encoder.omics_chunk_size: got {chunk}; use a positive integer")
            n = math.ceil(g / chunk)
            flat = torch.arange(n * chunk)
            index, valid = (flat % g).view(n, chunk), (flat < g).view(n, chunk)
            names = [f"omics[{i * chunk}:{min((i + 1) * chunk, g)}]" for i in range(n)]
            return index, valid, names
        if grouping != "gene_sets":
            raise ConfigError(f"model.tabular_encoder.omics_grouping: got {grouping!r}; use 'auto', 'chunk' or 'gene_sets'")
        groups = [list(gr) for gr in schema.omics_groups]
        if not groups:
            raise ConfigError(
                "model.tabular_encoder.omics_grouping: 'gene_sets' needs cohort.omics.gene_sets; set it or use 'chunk'"
            )
        bad = [(i, j) for i, gr in enumerate(groups) for j in gr if not 0 <= j < g]
        if bad or any(not gr for gr in groups):
            raise ConfigError(f"cohort.omics.gene_sets: group {bad[0][0] if bad else '(empty)'} has an index outside "
                              f"the {g} omics columns or is empty; check the gene-set file")
        m = max(len(gr) for gr in groups)
        index = torch.zeros(len(groups), m, dtype=torch.long)
        valid = torch.zeros(len(groups), m, dtype=torch.bool)
        for i, gr in enumerate(groups):
            index[i, : len(gr)] = torch.tensor(gr)
            valid[i, : len(gr)] = True
        names = list(schema.group_names) if len(schema.group_names) == len(groups) else \
            [f"gene_set_{i}" for i in range(len(groups))]
        return index, valid, names

    def _check(self, num: Tensor, cat: Tensor, omics: Tensor) -> None:
        s = self.schema
        want = {"num": (num, s.n_num), "cat": (cat, s.n_cat), "omics": (omics, s.n_omics)}
        for key, (t, n) in want.items():
            if t.dim() != 2 or t.shape[1] != n:
                raise DataError(f"table batch key {key!r}: expected [B, {n}] (schema), got {tuple(t.shape)}; "
                                "was the preprocessing from this run used?")
        if s.n_cat and cat.numel():
            over = (cat < 0) | (cat >= self.cat_cards)
            if bool(over.any()):
                col = int(over.any(dim=0).nonzero()[0])
                raise DataError(f"categorical column {s.categorical[col]!r}: index outside 0..{s.cat_cardinalities[col] - 1}; "
                                "re-run preprocessing with this run's preprocessing.json")

    def forward(self, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                omics: Tensor, omics_missing: Tensor) -> Tensor:
        """-> tokens ``[B, T, H]`` (see class docstring for input shapes)."""
        self._check(num, cat, omics)
        dt = self.num_weight.dtype
        parts = []
        if self.schema.n_num:
            tok = num.to(dt).unsqueeze(-1) * self.num_weight + self.num_bias  # [B, F_num, H]
            parts.append(torch.where(num_missing.unsqueeze(-1), self.num_missing_token, tok))
        if self.schema.n_cat:
            tok = self.cat_embed(cat.long() + self.cat_offsets)  # [B, F_cat, H]
            parts.append(torch.where(cat_missing.unsqueeze(-1), self.cat_missing_token, tok))
        if self.omics_index.numel():
            parts.append(self._omics_tokens(omics.to(dt), omics_missing))
        b = num.shape[0]
        if not parts:
            return num.new_zeros(b, 0, self.hidden, dtype=dt)
        tokens = torch.cat(parts, dim=1)
        return tokens + self.position + self.type_embed(self.token_types)

    def _omics_tokens(self, omics: Tensor, omics_missing: Tensor) -> Tensor:
        """``[B, G]`` -> ``[B, n_groups, H]``: masked per-group projection, rescaled by
        ``group size / observed count``; all-missing groups -> missing token."""
        x = omics[:, self.omics_index]  # [B, n_groups, M]
        obs = self.omics_valid & ~omics_missing[:, self.omics_index]
        x = torch.where(obs, x, torch.zeros((), dtype=x.dtype, device=x.device))
        n_obs = obs.sum(dim=-1, keepdim=True)  # [B, n_groups, 1]
        scale = self.omics_valid.sum(dim=-1, keepdim=True).to(x.dtype) / n_obs.clamp(min=1).to(x.dtype)
        tok = torch.einsum("bgm,gmh->bgh", x, self.omics_weight) * scale + self.omics_bias
        return torch.where(n_obs > 0, tok, self.omics_missing_token)

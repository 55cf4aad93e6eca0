"""Tabular / genomic transformer: CLS + feature tokens through a Hugging Face BERT encoder.

Architecture of FT-Transformer (Gorishniy et al. 2021, "Revisiting Deep Learning Models
for Tabular Data"): the :class:`~clinfusion.encoders.tokenizer.FeatureTokenizer` makes
one token per clinical feature and per omics group, a learned ``[CLS]`` token is
prepended, and the sequence goes through ``transformers.models.bert.BertEncoder``
(Devlin et al. 2019) built from a ``BertConfig`` and randomly initialised (never loaded
from a hub). There is no padding, so no attention mask: a missing feature is a learned
token, not an absent one. The output embedding is the final ``[CLS]`` state.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEncoder

from clinfusion.config.schema import TabularEncoderConfig
from clinfusion.encoders.schema import TableSchema
from clinfusion.encoders.tokenizer import FeatureTokenizer
from clinfusion.errors import ConfigError

__all__ = ["TableSchema", "FeatureTokenizer", "TabularEncoder"]


class TabularEncoder(nn.Module):
    """Table row -> ``[B, H]`` (``H = cfg.hidden_size``).

    Inputs (batch layout of :mod:`clinfusion.datasets.batch`): ``num [B, F_num]``,
    ``num_missing [B, F_num]``, ``cat [B, F_cat]``, ``cat_missing [B, F_cat]``,
    ``omics [B, G]``, ``omics_missing [B, G]``.

    Attributes:
        embed_dim: ``H``.
        token_names: the ``T`` token names (numeric columns, categorical columns, omics groups).
    """

    def __init__(self, cfg: TabularEncoderConfig, schema: TableSchema) -> None:
        super().__init__()
        if cfg.hidden_size % cfg.num_heads:
            raise ConfigError(
                f"model.tabular_encoder.num_heads: {cfg.num_heads} does not divide hidden_size {cfg.hidden_size}"
            )
        self.tokenizer = FeatureTokenizer(schema, cfg.hidden_size, cfg.omics_grouping, cfg.omics_chunk_size)
        self.cls = nn.Parameter(torch.randn(cfg.hidden_size) * 0.02)
        self.embed_norm = nn.LayerNorm(cfg.hidden_size)
        self.embed_drop = nn.Dropout(cfg.dropout)
        bert = BertConfig(
            vocab_size=1, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
            hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
            max_position_embeddings=1,
        )
        bert._attn_implementation = "sdpa"
        self.encoder = BertEncoder(bert)
        self.encoder.apply(self._init_bert)
        self.embed_dim = cfg.hidden_size
        self.token_names: List[str] = list(self.tokenizer.token_names)
        self.grad_checkpointing = False

    @staticmethod
    def _init_bert(m: nn.Module) -> None:
        """BERT's initialisation (normal 0.02, zero bias), as ``BertPreTrainedModel`` does."""
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each transformer layer in backward (saves activation memory)."""
        self.grad_checkpointing = bool(enable)

    def token_embeddings(self, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                         omics: Tensor, omics_missing: Tensor) -> Tensor:
        """Feature tokens before the transformer, ``[B, T, H]`` (captum attributes per token)."""
        return self.tokenizer(num, num_missing, cat, cat_missing, omics, omics_missing)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """``tokens [B, T, H]`` -> transformer output ``[B, 1 + T, H]`` (index 0 = CLS)."""
        b = tokens.shape[0]
        x = torch.cat([self.cls.to(tokens.dtype).expand(b, 1, -1), tokens], dim=1)
        x = self.embed_drop(self.embed_norm(x))
        for layer in self.encoder.layer:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
        return x

    def forward_from_tokens(self, tokens: Tensor) -> Tensor:
        """``tokens [B, T, H]`` -> CLS embedding ``[B, H]``."""
        return self.encode_tokens(tokens)[:, 0]

    def forward_tokens(self, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                       omics: Tensor, omics_missing: Tensor) -> Tensor:
        """All transformer outputs ``[B, 1 + T, H]`` (CLS first, then ``token_names`` order)."""
        return self.encode_tokens(self.token_embeddings(num, num_missing, cat, cat_missing, omics, omics_missing))

    def forward(self, num: Tensor, num_missing: Tensor, cat: Tensor, cat_missing: Tensor,
                omics: Tensor, omics_missing: Tensor) -> Tensor:
        """CLS embedding ``[B, H]``."""
        return self.forward_tokens(num, num_missing, cat, cat_missing, omics, omics_missing)[:, 0]

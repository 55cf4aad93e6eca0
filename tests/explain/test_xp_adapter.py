"""explainable_from_classifier on real encoders (cnn_tiny + FT-Transformer), IG completeness."""

import numpy as np
import torch
from torch import nn

from clinfusion.config.schema import ExplainConfig, ImageEncoderConfig, TabularEncoderConfig
from clinfusion.encoders.image import create_image_encoder
from clinfusion.encoders.schema import TableSchema
from clinfusion.encoders.tabular import TabularEncoder
from clinfusion.explain.adapter import explainable_from_classifier
from clinfusion.explain.common import forward_args
from clinfusion.explain.image import explain_images
from clinfusion.datasets.transforms import missing_table
from clinfusion.explain.tabular import explain_table

SCHEMA = TableSchema(numeric=["marker", "age"], categorical=["sex"], cat_cardinalities=[3],
                     omics_columns=[f"g{i}" for i in range(5)])


class Fused(nn.Module):
    """The FusedClassifier face over real encoders (concat + linear head)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image_encoder = create_image_encoder(ImageEncoderConfig(name="cnn_tiny", width=4), 2, 1)
        self.table_encoder = TabularEncoder(TabularEncoderConfig(hidden_size=8, num_layers=1, num_heads=2,
                                                                 intermediate_size=16, dropout=0.0,
                                                                 omics_chunk_size=2), SCHEMA)
        self.head = nn.Linear(self.image_encoder.embed_dim + 8, 1)

    def forward(self, image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask):
        img = self.image_encoder(image) * modality_mask[:, :1]
        tab = self.table_encoder(num, num_missing, cat, cat_missing, omics, omics_missing) * modality_mask[:, 1:]
        return self.head(torch.cat([img, tab], 1))


def _batch(b=2):
    g = torch.Generator().manual_seed(0)
    return {"id": ["a", "b"], "image": torch.rand(b, 1, 16, 16, generator=g), "num": torch.randn(b, 2, generator=g),
            "num_missing": torch.tensor([[False, False], [False, True]]), "cat": torch.tensor([[1], [2]]),
            "cat_missing": torch.zeros(b, 1, dtype=torch.bool), "omics": torch.randn(b, 5, generator=g),
            "omics_missing": torch.zeros(b, 5, dtype=torch.bool), "modality_mask": torch.ones(b, 2, dtype=torch.bool)}


def test_handles_found_by_type():
    model = Fused()
    ex = explainable_from_classifier(model, "binary")
    assert ex.image_encoder is model.image_encoder and ex.token_layer is model.table_encoder.tokenizer
    assert ex.default_cam_layer == "features.2"
    assert ex.token_names == ["marker", "age", "sex", "omics[0:2]", "omics[2:4]", "omics[4:5]"]
    assert ex.omics_groups == [[0, 1], [2, 3], [4]]


def test_tabular_ig_completeness_on_transformer():
    model = Fused().eval()
    ex = explainable_from_classifier(model, "binary")
    batch = _batch()
    t = torch.zeros(2, dtype=torch.long)
    a = explain_table(ex, batch, t, ["tabular_ig"], ExplainConfig(ig_steps=64))["tabular_ig"]
    base = dict(batch, **missing_table(batch))
    with torch.no_grad():
        gap = (model(*forward_args(batch)) - model(*forward_args(base)))[:, 0].numpy()
    np.testing.assert_allclose(np.nansum(a.values, 1), gap, rtol=0.05, atol=1e-3)  # IG completeness
    assert np.isnan(a.values[1, 1]) and a.missing[1, 1]  # age missing for sample b
    assert a.genes.shape == (2, 5)
    maps = explain_images(ex, batch, t, ["gradcam", "integrated_gradients"], ExplainConfig(ig_steps=8))
    assert maps["gradcam"].shape == (2, 16, 16)

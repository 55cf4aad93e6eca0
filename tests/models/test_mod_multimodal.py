"""MultimodalModel: shapes, missing modalities, tensor and dict faces agree."""

from __future__ import annotations

import pytest
import torch

from clinfusion.models import TABLE_KEYS, MultimodalModel

from mod_helpers import SCHEMA, fake_batch, tiny_model_cfg


@pytest.mark.parametrize("fusion", ["concat", "gated", "cross_attention"])
def test_shapes_and_missing_modalities(fusion):
    torch.manual_seed(0)
    model = MultimodalModel(tiny_model_cfg(fusion), 2, 1, SCHEMA, [16, 16]).eval()
    batch = fake_batch()
    out = model(batch)
    di, dt = model.image_encoder.embed_dim, model.table_encoder.embed_dim
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"image_emb": (6, di), "table_emb": (6, dt), "image_proj": (6, 8), "table_proj": (6, 8),
                      "fused": (6, 12)}
    # a missing image's pixels never reach the fused embedding
    other = dict(batch, image=batch["image"].clone())
    other["image"][0] = torch.rand(1, 16, 16)
    assert torch.allclose(model(other)["fused"][0], out["fused"][0], atol=1e-6)
    assert not torch.allclose(model(other)["image_emb"][0], out["image_emb"][0])
    # an all-missing batch still runs
    none = dict(batch, modality_mask=torch.zeros(6, 2, dtype=torch.bool))
    assert torch.isfinite(model(none)["fused"]).all()


def test_forward_tensors_equals_forward_and_inputs_untouched(model):
    model.eval()
    batch = fake_batch()
    copy = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    a = model(batch)
    b = model.forward_tensors(batch["image"], *(batch[k] for k in TABLE_KEYS), batch["modality_mask"])
    for k in a:
        assert torch.equal(a[k], b[k])
    assert torch.equal(model.encode_image(batch["image"]), a["image_emb"])
    assert torch.equal(model.encode_table(batch), a["table_emb"])
    for k, v in copy.items():
        assert torch.equal(batch[k], v), k


def test_3d_model_shapes():
    torch.manual_seed(0)
    model = MultimodalModel(tiny_model_cfg(), 3, 1, SCHEMA, [16, 16, 16]).eval()
    batch = fake_batch(4)
    batch["image"] = torch.rand(4, 1, 16, 16, 16)
    assert model(batch)["fused"].shape == (4, 12)

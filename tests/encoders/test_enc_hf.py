"""Hugging Face vision backbones: tiny ViT / DINOv2 / ConvNeXt built from configs, saved
locally, loaded by path or by cached hub id, offline; 1-channel input and the model's own
normalisation."""

from __future__ import annotations

import json

import pytest
import torch

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image import create_image_encoder, list_image_encoders
from clinfusion.errors import ConfigError

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]


def _tiny(kind):
    from transformers import ConvNextConfig, ConvNextModel, Dinov2Config, Dinov2Model, ViTConfig, ViTModel

    torch.manual_seed(0)
    if kind == "vit":
        return ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                  image_size=32, patch_size=8))
    if kind == "dinov2":
        return Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                                        image_size=32, patch_size=8))
    return ConvNextModel(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2))


def _save(model, folder):
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": MEAN, "image_std": STD,
                                                                 "do_normalize": True}))
    return folder


@pytest.mark.parametrize("kind,dim", [("vit", 32), ("dinov2", 32), ("convnext", 16)])
def test_local_folder_loads_and_runs_on_one_channel_with_its_normalisation(tmp_path, kind, dim):
    ref = _tiny(kind).eval()
    folder = _save(ref, tmp_path / kind)
    enc = create_image_encoder(ImageEncoderConfig(name="hf", hf_model=str(folder)), 2, 1, [32, 32]).eval()
    assert "hf" in list_image_encoders() and enc.embed_dim == dim
    assert enc.get_submodule(enc.default_cam_layer) is not None and enc.default_cam_layer != "net"
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        y = enc(x)
        pix = (x.repeat(1, 3, 1, 1) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        out = ref(pixel_values=pix)
        expect = out.last_hidden_state[:, 0] if kind != "convnext" else out.pooler_output
    assert y.shape == (2, dim)
    torch.testing.assert_close(y, expect, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(y, enc.net(pixel_values=x.repeat(1, 3, 1, 1)).last_hidden_state[:, 0]
                              if kind != "convnext" else enc.net(pixel_values=x.repeat(1, 3, 1, 1)).pooler_output)
    enc(x).sum().backward()
    seen = []  # the Grad-CAM layer's output: tokens (CLS first + the patch grid) or a feature map
    hook = enc.get_submodule(enc.default_cam_layer).register_forward_hook(lambda m, a, o: seen.append(o))
    enc(x)
    hook.remove()
    out = seen[0][0] if isinstance(seen[0], tuple) else seen[0]
    if kind == "convnext":
        assert enc.cam_token_grid is None and out.shape[:2] == (2, 16) and out.dim() == 4
    else:
        assert enc.cam_token_grid == (4, 4) and out.shape == (2, 1 + 16, 32)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_hub_id_resolves_from_the_local_cache_only(tmp_path):
    cache = tmp_path / "hub"
    snap = cache / "models--tiny-org--tiny-vit" / "snapshots" / ("a" * 40)
    _save(_tiny("vit"), snap)
    (cache / "models--tiny-org--tiny-vit" / "refs").mkdir(parents=True)
    (cache / "models--tiny-org--tiny-vit" / "refs" / "main").write_text("a" * 40)
    cfg = ImageEncoderConfig(name="hf", hf_model="tiny-org/tiny-vit", hf_cache_dir=str(cache))
    enc = create_image_encoder(cfg, 2, 1, [32, 32])
    assert enc(torch.rand(1, 1, 32, 32)).shape == (1, 32)
    with pytest.raises(ConfigError) as err:
        create_image_encoder(cfg.model_copy(update={"hf_model": "tiny-org/not-cached"}), 2, 1, [32, 32])
    msg = str(err.value)
    assert "\n" not in msg and "model.image_encoder.hf_model" in msg and "tiny-org/not-cached" in msg
    assert "nothing is downloaded" in msg


def test_bad_hf_settings_are_one_line_config_errors(tmp_path):
    folder = _save(_tiny("vit"), tmp_path / "vit")
    with pytest.raises(ConfigError, match="needs a save_pretrained folder"):
        create_image_encoder(ImageEncoderConfig(name="hf"), 2, 1, [32, 32])
    with pytest.raises(ConfigError, match="vision models are 2D"):
        create_image_encoder(ImageEncoderConfig(name="hf", hf_model=str(folder)), 3, 1, [32, 32, 32])
    with pytest.raises(ConfigError, match="image.channels: 2 channels"):
        create_image_encoder(ImageEncoderConfig(name="hf", hf_model=str(folder)), 2, 2, [32, 32])

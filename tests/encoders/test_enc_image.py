"""Image encoders: every registered name in 2D and 3D, gradients, weights round-trip, errors."""

import pytest
import torch
from safetensors.torch import save_file

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image import create_image_encoder, list_image_encoders
from clinfusion.encoders.vit import choose_patch_size
from clinfusion.errors import ConfigError

SIZES = {2: (32, 32), 3: (16, 16, 16)}


def _cfg(name, **kw):
    return ImageEncoderConfig(name=name, width=32 if name.startswith("vit") else 8, **kw)


def test_registry_lists_expected_names():
    names = list_image_encoders()
    for n in ("cnn_tiny", "resnet10", "resnet18", "resnet34", "resnet50", "vit_tiny", "vit_small"):
        assert n in names


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", [n for n in list_image_encoders() if n != "hf"])  # hf: test_enc_hf.py
def test_shape_gradients_and_cam_layer(name, spatial_dims):
    torch.manual_seed(0)
    enc = create_image_encoder(_cfg(name), spatial_dims, 2, SIZES[spatial_dims])
    x = torch.randn(2, 2, *SIZES[spatial_dims])
    out = enc(x)
    assert out.shape == (2, enc.embed_dim)
    out.square().sum().backward()
    no_grad = [k for k, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    cam = enc.get_submodule(enc.default_cam_layer)
    seen = {}
    h = cam.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    enc.eval()
    enc(x)
    h.remove()
    if enc.cam_token_grid is None:  # CNN: spatial feature map [B, C, *S']
        assert seen["o"].dim() == 2 + spatial_dims
    else:  # ViT: tokens [B, N, D] with N = prod(grid)
        assert seen["o"].shape[1] == torch.Size(enc.cam_token_grid).numel()


@pytest.mark.parametrize("name", ["cnn_tiny", "resnet10", "vit_tiny"])
def test_grad_checkpointing_gives_same_gradients(name):
    torch.manual_seed(0)
    enc = create_image_encoder(_cfg(name), 2, 1, SIZES[2]).eval()  # eval: BN/dropout deterministic
    x = torch.randn(2, 1, 32, 32)

    def grads(flag):
        enc.zero_grad()
        enc.set_grad_checkpointing(flag)
        enc.training = True  # checkpointing only acts in training; keep submodules in eval
        enc(x).sum().backward()
        enc.training = False
        return [p.grad.clone() for p in enc.parameters()]

    for a, b in zip(grads(False), grads(True)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    src = create_image_encoder(_cfg("resnet10"), 3, 1).eval()
    path = tmp_path / f"w{suffix}"
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(path)) if suffix == ".safetensors" else torch.save(sd, path)
    torch.manual_seed(1)
    dst = create_image_encoder(_cfg("resnet10", weights=str(path)), 3, 1).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    torch.testing.assert_close(dst(x), src(x))


def test_weights_from_bare_monai_backbone_with_fc(tmp_path):
    """A file saved from the MONAI ResNet itself (keys without 'net.', with an fc) loads."""
    r = create_image_encoder(_cfg("resnet10"), 2, 1)
    bare = {k[len("net."):]: v for k, v in r.state_dict().items()}
    bare["fc.weight"] = torch.zeros(3, r.embed_dim)
    torch.save(bare, tmp_path / "bare.pth")
    loaded = create_image_encoder(_cfg("resnet10", weights=str(tmp_path / "bare.pth")), 2, 1)
    torch.testing.assert_close(loaded.state_dict()["net.conv1.weight"], r.state_dict()["net.conv1.weight"])


def test_weights_missing_file_names_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    with pytest.raises(ConfigError, match=r"model.image_encoder.weights.*nope.safetensors.*not found"):
        create_image_encoder(_cfg("cnn_tiny", weights=str(p)), 2, 1)


def test_weights_mismatched_keys_named(tmp_path):
    other = create_image_encoder(_cfg("cnn_tiny"), 2, 1)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "cnn.safetensors"))
    with pytest.raises(ConfigError) as e:
        create_image_encoder(_cfg("resnet10", weights=str(tmp_path / "cnn.safetensors")), 2, 1)
    msg = str(e.value)
    assert "cnn.safetensors" in msg and "missing keys" in msg and "net.conv1.weight" in msg
    assert "unexpected keys" in msg and "features.0" in msg and "\n" not in msg


def test_weights_wrong_width_reports_shapes(tmp_path):
    a = create_image_encoder(ImageEncoderConfig(name="cnn_tiny", width=8), 2, 1)
    torch.save(a.state_dict(), tmp_path / "w8.pt")
    with pytest.raises(ConfigError, match=r"w8.pt.*shape mismatch"):
        create_image_encoder(ImageEncoderConfig(name="cnn_tiny", width=4, weights=str(tmp_path / "w8.pt")), 2, 1)


def test_unknown_name_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown image encoder 'resnet19'.*resnet18.*Valid names: .*cnn_tiny"):
        create_image_encoder(ImageEncoderConfig(name="resnet19"), 2, 1)


def test_vit_needs_size_and_patch_divides():
    with pytest.raises(ConfigError, match="image.size"):
        create_image_encoder(_cfg("vit_tiny"), 2, 1)
    assert choose_patch_size((224, 224)) == 16
    assert choose_patch_size((16, 16, 16)) == 8
    assert choose_patch_size((30, 30)) == 2
    enc = create_image_encoder(_cfg("vit_tiny"), 2, 1, (48, 40))
    assert enc.patch_size == 8 and enc.cam_token_grid == (6, 5)
    assert enc(torch.randn(1, 1, 48, 40)).shape == (1, 32)


def test_width_sets_embed_dim():
    assert create_image_encoder(ImageEncoderConfig(name="resnet50", width=4), 2, 1).embed_dim == 4 * 8 * 4
    assert create_image_encoder(ImageEncoderConfig(name="resnet18"), 2, 3).embed_dim == 512


def _cam_output(enc, x):
    seen = {}
    h = enc.get_submodule(enc.default_cam_layer).register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    out = enc(x)
    h.remove()
    return out, seen["o"]


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name,default_div,stride1_div", [("cnn_tiny", 8, 4), ("resnet10", 32, 8)])
def test_pool_modes_and_stem_stride(name, default_div, stride1_div, spatial_dims):
    size = (64, 64) if spatial_dims == 2 else (32, 32, 32)
    x = torch.randn(2, 1, *size)
    for stem, div in ((None, default_div), (1, stride1_div)):
        torch.manual_seed(0)
        enc = create_image_encoder(_cfg(name, stem_stride=stem), spatial_dims, 1, size).eval()
        out, fmap = _cam_output(enc, x)
        assert fmap.shape[2:] == tuple(s // div for s in size)
        assert torch.allclose(out, fmap.flatten(2).mean(-1), atol=1e-6)  # pool: avg (the default)
    widths = {}
    for pool in ("max", "avgmax"):
        torch.manual_seed(0)
        enc = create_image_encoder(_cfg(name, pool=pool, stem_stride=1), spatial_dims, 1, size).eval()
        out, fmap = _cam_output(enc, x)
        flat = fmap.flatten(2)
        expect = flat.amax(-1) if pool == "max" else torch.cat([flat.mean(-1), flat.amax(-1)], 1)
        assert torch.allclose(out, expect, atol=1e-6) and out.shape == (2, enc.embed_dim)
        widths[pool] = enc.embed_dim
    assert widths["avgmax"] == 2 * widths["max"]


def test_max_pool_keeps_a_small_patch_that_avg_pool_dilutes():
    # the same weights, one small bright patch added to a noise image: the max-pooled embedding
    # moves far more (relative to its spread over noise images) than the average-pooled one
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(16, 1, 64, 64, generator=g) * 0.2
    patched = noise.clone()
    patched[:, :, 30:33, 40:43] += 2.0
    shift = {}
    for pool in ("avg", "max"):
        torch.manual_seed(0)
        enc = create_image_encoder(_cfg("cnn_tiny", pool=pool, stem_stride=1), 2, 1, (64, 64)).eval()
        with torch.no_grad():
            a, b = enc(noise), enc(patched)
        shift[pool] = float(((b - a).mean(0) / (a.std(0) + 1e-6)).abs().max())
    assert shift["max"] > 1.5 * shift["avg"]  # 2.3x here; equal pooling would give 1x


@pytest.mark.parametrize("key", [{"pool": "max"}, {"stem_stride": 1}])
def test_pool_and_stem_are_refused_for_token_encoders(key):
    with pytest.raises(ConfigError, match=r"model.image_encoder.pool / stem_stride.*vit_tiny"):
        create_image_encoder(_cfg("vit_tiny", **key), 2, 1, (32, 32))

"""Image attribution methods on analytic toys: exact values, shapes, error messages."""

import pytest
import torch
from xp_helpers import ConvToy, LinearToy, toy_batch, toy_explainable

from clinfusion.config.schema import ExplainConfig
from clinfusion.errors import ConfigError
from clinfusion.explain.image import IMAGE_METHODS, explain_images, occlusion_window, resolve_cam_layer


def test_registry_names_and_unknown_method_lists_valid():
    assert IMAGE_METHODS.names() == ["gradcam", "integrated_gradients", "occlusion"]
    with pytest.raises(ConfigError, match="Valid names: gradcam, integrated_gradients, occlusion"):
        IMAGE_METHODS.get("saliency")


@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_ig_and_unit_occlusion_equal_w_times_x_minus_reference_on_linear_model(baseline):
    model = LinearToy((1, 8, 8))
    ex, batch = toy_explainable(model), toy_batch()
    t = torch.zeros(3, dtype=torch.long)
    maps = explain_images(ex, batch, t, ["integrated_gradients", "occlusion"],
                          ExplainConfig(ig_steps=8, occlusion_window=[1, 1], image_baseline=baseline))
    x = batch["image"]
    ref = torch.zeros_like(x) if baseline == "zero" else x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    expected = ((x - ref) * model.w).sum(1).detach()  # f linear in x: IG = occlusion = w * (x - reference)
    for m in ("integrated_gradients", "occlusion"):
        assert maps[m].shape == (3, 8, 8)
        torch.testing.assert_close(maps[m], expected, atol=1e-4, rtol=1e-4)


def test_blur_reference_removes_fine_detail_and_keeps_the_level():
    from clinfusion.explain.image import image_reference

    g = torch.Generator().manual_seed(0)
    x = 0.5 + 0.1 * torch.randn(2, 1, 32, 32, generator=g)
    ref = image_reference(x, "blur")
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # away from the zero-padded border
    assert ref[inner].std() < 0.3 * x[inner].std()
    assert abs(float(ref[inner].mean()) - 0.5) < 0.02


def test_multichannel_maps_sum_channels():
    model = LinearToy((3, 8, 8))
    batch = toy_batch(shape=(3, 8, 8))
    maps = explain_images(toy_explainable(model), batch, torch.zeros(3, dtype=torch.long),
                          ["integrated_gradients"], ExplainConfig(ig_steps=4, image_baseline="zero"))
    torch.testing.assert_close(maps["integrated_gradients"], (batch["image"] * model.w).sum(1).detach(),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dims,shape", [(2, (1, 12, 12)), (3, (1, 8, 8, 8))])
def test_all_methods_give_input_resolution_maps(dims, shape):
    model = ConvToy(spatial_dims=dims)
    batch = toy_batch(b=2, shape=shape)
    maps = explain_images(toy_explainable(model), batch, torch.zeros(2, dtype=torch.long),
                          ["integrated_gradients", "occlusion", "gradcam"], ExplainConfig(ig_steps=4))
    for m, v in maps.items():
        assert v.shape == (2,) + shape[1:], m
        assert torch.isfinite(v).all()
    assert (maps["gradcam"] >= 0).all()  # ReLU'd Grad-CAM


def test_gradcam_layer_not_in_model_lists_candidates():
    ex = toy_explainable(ConvToy())
    with pytest.raises(ConfigError) as err:
        resolve_cam_layer(ex, "layer4")
    msg = str(err.value)
    assert "explain.gradcam_layer='layer4'" in msg and "features.0" in msg and "features.2" in msg


def test_gradcam_layer_found_by_path():
    ex = toy_explainable(ConvToy())
    assert resolve_cam_layer(ex, "features.0") is ex.image_encoder.features[0]
    assert resolve_cam_layer(ex, None) is ex.image_encoder.features[2]  # the default


def test_occlusion_window_default_and_bad_value():
    assert occlusion_window(ExplainConfig(), (64, 32)) == [8, 4]
    with pytest.raises(ConfigError, match=r"explain.occlusion_window=\[3, 3, 3\] must give 2 sizes"):
        occlusion_window(ExplainConfig(occlusion_window=[3, 3, 3]), (16, 16))


def test_gradcam_on_vit_tokens_reshaped_to_patch_grid():
    from torch import nn

    from clinfusion.config.schema import ImageEncoderConfig
    from clinfusion.encoders.image import create_image_encoder

    enc = create_image_encoder(ImageEncoderConfig(name="vit_tiny", width=16), 2, 1, image_size=[16, 16])

    class ViTToy(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_encoder, self.head = enc, nn.Linear(16, 1)

        def forward(self, image, *rest):
            return self.head(self.image_encoder(image))

    from clinfusion.explain.common import Explainable

    model = ViTToy().eval()
    ex = Explainable(model=model, image_encoder=enc, default_cam_layer=enc.default_cam_layer,
                     cam_token_grid=enc.cam_token_grid)
    batch = toy_batch(b=2, shape=(1, 16, 16))
    before = model(batch["image"])
    maps = explain_images(ex, batch, torch.zeros(2, dtype=torch.long), ["gradcam"], ExplainConfig())
    assert maps["gradcam"].shape == (2, 16, 16) and (maps["gradcam"] >= 0).all()
    assert type(enc.net.blocks[-1]).__name__ == "TransformerEncoderLayer"  # the wrapper was removed
    torch.testing.assert_close(model(batch["image"]), before)
    with pytest.raises(ConfigError, match="net.blocks.11"):
        resolve_cam_layer(ex, "blocks.99")

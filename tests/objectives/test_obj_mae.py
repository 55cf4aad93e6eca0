"""MAE: masked patches only, 2D/3D shapes, reconstruction improves on a tiny ViT."""

from __future__ import annotations

import pytest
import torch

from clinfusion.config.schema import ImageEncoderConfig
from clinfusion.encoders.image import create_image_encoder
from clinfusion.objectives import MAELoss, patchify


def _setup(dims, size):
    torch.manual_seed(0)
    enc = create_image_encoder(ImageEncoderConfig(name="vit_tiny", width=16), dims, 1, [size] * dims)
    enc.net.blocks = enc.net.blocks[:2]
    mae = MAELoss(enc.embed_dim, enc.cam_token_grid, enc.patch_size, 1, mask_ratio=0.75, decoder_dim=16,
                  decoder_depth=1, decoder_heads=2)
    return enc, mae


def test_patchify_matches_the_conv_patch_grid_order():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    p = patchify(x, 2)  # [1, 4, 2*2*2]
    assert p.shape == (1, 4, 8)
    # patch 1 = rows 0-1, cols 2-3 (row-major grid); features (p1 p2 c)
    assert p[0, 1].tolist() == [2.0, 18.0, 3.0, 19.0, 6.0, 22.0, 7.0, 23.0]
    assert patchify(torch.zeros(2, 1, 4, 8, 8), 4).shape == (2, 4, 64)  # 1 x 2 x 2 patches of 4^3


@pytest.mark.parametrize("dims,size,n", [(2, 16, 4), (3, 8, 8)])  # patch 8 (2D) / 4 (3D): see choose_patch_size
def test_loss_is_on_hidden_patches_only(dims, size, n):
    enc, mae = _setup(dims, size)
    assert mae.n == n
    x = torch.rand(3, 1, *([size] * dims))
    r = mae.reconstruct(enc, x, torch.Generator().manual_seed(0))
    assert r["pred"].shape == r["target"].shape == (3, n, mae.patch ** dims)
    assert r["mask"].sum(1).tolist() == [n - mae.keep] * 3
    loss = mae(enc, x, torch.Generator().manual_seed(0))["mae_loss"]
    per = ((r["pred"] - r["target"]) ** 2).mean(-1)
    torch.testing.assert_close(loss, per[r["mask"]].mean())
    # the visible patches' error differs: had they been averaged in, the loss would differ
    assert not torch.allclose(per[r["mask"]].mean(), per[~r["mask"]].mean())


@pytest.mark.parametrize("dims,size", [(2, 16), (3, 8)])
def test_reconstruction_improves_over_a_few_steps(dims, size):
    enc, mae = _setup(dims, size)
    g = torch.Generator().manual_seed(1)
    # smooth images (low-frequency bumps): hidden patches are predictable from visible ones
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, size)] * dims, indexing="ij"))
    centres = torch.rand(8, dims, generator=g) * 1.2 - 0.6
    x = torch.exp(-((grid[None] - centres.view(8, dims, *[1] * dims)) ** 2).sum(1) * 3).unsqueeze(1)
    opt = torch.optim.Adam(list(enc.parameters()) + list(mae.parameters()), lr=3e-3)
    ev = lambda: float(mae(enc, x, torch.Generator().manual_seed(5))["mae_loss"])  # noqa: E731
    with torch.no_grad():
        before = ev()
    for _ in range(40):
        opt.zero_grad()
        mae(enc, x)["mae_loss"].backward()
        opt.step()
    with torch.no_grad():
        after = ev()
    assert after < 0.7 * before

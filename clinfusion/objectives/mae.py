"""Masked image modelling: the masked autoencoder (MAE, He et al. 2022, "Masked Autoencoders
Are Scalable Vision Learners") for the ViT image encoders, 2D and 3D.

A random ``mask_ratio`` of the patches is dropped; the encoder's transformer blocks see
only the visible patch tokens (with their position embeddings); a light decoder (MONAI
``TransformerBlock`` s) receives the encoded visible tokens plus a learned mask token at
every hidden position and predicts each hidden patch's pixels. The loss is the MSE on the
hidden patches only (per-patch normalised targets when ``norm_pix_loss``).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from monai.networks.blocks import TransformerBlock
from torch import Tensor, nn

_PATCHIFY = {
    2: "b c (h p1) (w p2) -> b (h w) (p1 p2 c)",
    3: "b c (d p0) (h p1) (w p2) -> b (d h w) (p0 p1 p2 c)",
}


def patchify(image: Tensor, patch: int) -> Tensor:
    """``[B, C, *S]`` (2D or 3D, each side divisible by ``patch``) -> ``[B, N, patch^d * C]``,
    patches in the row-major grid order of a conv patch embedding."""
    dims = image.dim() - 2
    if dims not in _PATCHIFY:
        raise ValueError(f"patchify expects [B, C, H, W] or [B, C, D, H, W]; got {tuple(image.shape)}")
    axes = dict(p0=patch, p1=patch, p2=patch) if dims == 3 else dict(p1=patch, p2=patch)
    return rearrange(image, _PATCHIFY[dims], **axes)


def random_masking(batch: int, n: int, keep: int, device: torch.device,
                   generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """Per-row random split of ``n`` patches: ``keep`` visible.

    Returns ``ids_keep [B, keep]``, ``ids_restore [B, n]`` (inverse permutation) and
    ``mask [B, n]`` bool (True = hidden), as in the MAE reference implementation.
    """
    noise = torch.rand(batch, n, generator=generator, device=generator.device if generator else device).to(device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(batch, n, dtype=torch.bool, device=device)
    mask[:, :keep] = False
    return {"ids_keep": ids_shuffle[:, :keep], "ids_restore": ids_restore, "mask": torch.gather(mask, 1, ids_restore)}


class MAELoss(nn.Module):
    """MAE decoder + loss for an encoder exposing ``patch_tokens`` / ``encode_tokens`` (the ViTs).

    ``forward(encoder, image [B, C, *S]) -> {"mae_loss": []}``.

    Args:
        embed_dim: encoder width ``D``; grid: patch grid ``S / p``; patch: ``p``;
        in_channels: ``C``; mask_ratio, decoder_dim, decoder_depth, decoder_heads,
        norm_pix_loss: see ``pretrain.mae`` in the config schema.
    """

    def __init__(self, embed_dim: int, grid: Sequence[int], patch: int, in_channels: int, mask_ratio: float = 0.75,
                 decoder_dim: int = 64, decoder_depth: int = 2, decoder_heads: int = 4, norm_pix_loss: bool = True) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MAE mask_ratio must be in (0, 1); got {mask_ratio}")
        if decoder_dim % decoder_heads:
            raise ValueError(f"MAE decoder_heads {decoder_heads} does not divide decoder_dim {decoder_dim}")
        self.n = 1
        for g in grid:
            self.n *= int(g)
        self.keep = max(1, int(round(self.n * (1.0 - mask_ratio))))
        if self.keep >= self.n:
            raise ValueError(f"MAE: {self.n} patches leave none hidden at mask_ratio {mask_ratio}; raise it or the image size")
        self.patch, self.norm_pix_loss = patch, norm_pix_loss
        self.embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.pos = nn.Parameter(torch.randn(1, self.n, decoder_dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(decoder_dim, 4 * decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.norm = nn.LayerNorm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch ** len(grid) * in_channels)
        nn.init.normal_(self.mask_token, std=0.02)

    def reconstruct(self, encoder: nn.Module, image: Tensor,
                    generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        """``{"pred": [B, N, p^d C], "target": [B, N, p^d C], "mask": [B, N] bool}``."""
        tokens = encoder.patch_tokens(image)  # [B, N, D]
        b, n, d = tokens.shape
        if n != self.n:
            raise ValueError(f"MAE built for {self.n} patches; the encoder gave {n} for image {tuple(image.shape)}")
        m = random_masking(b, n, self.keep, tokens.device, generator)
        visible = torch.gather(tokens, 1, m["ids_keep"].unsqueeze(-1).expand(-1, -1, d))
        x = self.embed(encoder.encode_tokens(visible))  # [B, keep, Dd]
        x = torch.cat([x, self.mask_token.to(x.dtype).expand(b, n - self.keep, -1)], dim=1)
        x = torch.gather(x, 1, m["ids_restore"].unsqueeze(-1).expand(-1, -1, x.shape[-1])) + self.pos.to(x.dtype)
        for blk in self.blocks:
            x = blk(x)
        target = patchify(image.float(), self.patch)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return {"pred": self.pred(self.norm(x)).float(), "target": target, "mask": m["mask"]}

    def forward(self, encoder: nn.Module, image: Tensor, generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        r = self.reconstruct(encoder, image, generator)
        per_patch = F.mse_loss(r["pred"], r["target"], reduction="none").mean(dim=-1)  # [B, N]
        return {"mae_loss": per_patch[r["mask"]].mean()}

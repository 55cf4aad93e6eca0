"""Toy classifiers with the FusedClassifier face, for the explain tests.

``LinearToy``: logit = <w, image> + sum_t <v, token_t> (analytic attributions).
``ConvToy``: a small conv net + token MLP + MLP head (Grad-CAM, training, faithfulness).
Both take ``forward(image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from clinfusion.explain.common import Explainable


class ToyTokenizer(nn.Module):
    """Tokens ``[B, T, H]``: numeric ``x * w + b`` / categorical embedding / omics group linear;
    a learned missing embedding where the value is missing."""

    def __init__(self, f_num: int, cards: list, groups: list, hidden: int = 4) -> None:
        super().__init__()
        self.groups = groups
        self.w = nn.Parameter(torch.randn(f_num, hidden))
        self.b = nn.Parameter(torch.randn(f_num, hidden) * 0.02)  # small, as in FeatureTokenizer
        self.num_miss = nn.Parameter(torch.randn(f_num, hidden) * 0.02)
        self.cat = nn.ModuleList([nn.Embedding(c, hidden) for c in cards])
        self.cat_miss = nn.Parameter(torch.randn(len(cards), hidden))
        self.om = nn.ModuleList([nn.Linear(len(g), hidden) for g in groups])
        self.om_miss = nn.Parameter(torch.randn(len(groups), hidden))

    def forward(self, num, num_missing, cat, cat_missing, omics, omics_missing):
        toks = [torch.where(num_missing[..., None], self.num_miss, num[..., None] * self.w + self.b)]
        if len(self.cat):
            c = torch.stack([e(cat[:, j]) for j, e in enumerate(self.cat)], dim=1)
            toks.append(torch.where(cat_missing[..., None], self.cat_miss, c))
        for j, g in enumerate(self.groups):
            allm = omics_missing[:, g].all(dim=1, keepdim=True)
            t = self.om[j](torch.where(omics_missing[:, g], torch.zeros_like(omics[:, g]), omics[:, g]))
            toks.append(torch.where(allm, self.om_miss[j], t)[:, None])
        return torch.cat(toks, dim=1)


class LinearToy(nn.Module):
    def __init__(self, shape, f_num=3, cards=(3,), groups=(), hidden=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.w = nn.Parameter(torch.randn(*shape))
        self.tokenizer = ToyTokenizer(f_num, list(cards), [list(g) for g in groups], hidden)
        self.v = nn.Parameter(torch.randn(hidden))

    def forward(self, image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask):
        img = (image * self.w).flatten(1).sum(1) * modality_mask[:, 0].float()
        tab = (self.tokenizer(num, num_missing, cat, cat_missing, omics, omics_missing) @ self.v).sum(1)
        return (img + tab * modality_mask[:, 1].float())[:, None]


class ConvToy(nn.Module):
    def __init__(self, spatial_dims=2, f_num=3, cards=(3,), groups=(), hidden=8, width=8, seed=0, centre=0.0, scale=1.0,
                 kernel=3):
        super().__init__()
        torch.manual_seed(seed)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        pool = nn.AdaptiveMaxPool2d if spatial_dims == 2 else nn.AdaptiveMaxPool3d
        self.centre, self.scale = centre, scale  # fixed input standardisation: (image - centre) * scale
        self.image_encoder = nn.Sequential()
        pad = dict(padding_mode="replicate")  # no artificial edge at the border for IG's black baseline
        self.image_encoder.features = nn.Sequential(conv(1, width, kernel, padding=kernel // 2, **pad), nn.ReLU(),
                                                    conv(width, width, 3, padding=1, **pad), nn.ReLU())
        self.image_encoder.pool = nn.Sequential(pool(1), nn.Flatten())
        self.tokenizer = ToyTokenizer(f_num, list(cards), [list(g) for g in groups], hidden)
        self.head = nn.Sequential(nn.Linear(width + hidden, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, image, num, num_missing, cat, cat_missing, omics, omics_missing, modality_mask):
        img = self.image_encoder((image - self.centre) * self.scale) * modality_mask[:, :1].float()
        tab = self.tokenizer(num, num_missing, cat, cat_missing, omics, omics_missing).mean(1)
        return self.head(torch.cat([img, tab * modality_mask[:, 1:].float()], dim=1))


def toy_batch(b=3, shape=(1, 8, 8), f_num=3, cards=(3,), g=0, seed=1, missing=None):
    gen = torch.Generator().manual_seed(seed)
    batch = {
        "id": [f"s{i}" for i in range(b)],
        "image": torch.rand(b, *shape, generator=gen),
        "num": torch.randn(b, f_num, generator=gen),
        "num_missing": torch.zeros(b, f_num, dtype=torch.bool),
        "cat": torch.randint(1, cards[0] if cards else 2, (b, len(cards)), generator=gen),
        "cat_missing": torch.zeros(b, len(cards), dtype=torch.bool),
        "omics": torch.randn(b, g, generator=gen),
        "omics_missing": torch.zeros(b, g, dtype=torch.bool),
        "modality_mask": torch.ones(b, 2, dtype=torch.bool),
    }
    if missing is not None:  # (row, numeric col) set missing
        r, c = missing
        batch["num"][r, c] = 0.0
        batch["num_missing"][r, c] = True
    return batch


def toy_explainable(model, f_num=3, cards=(3,), groups=(), cam="features.2"):
    return Explainable(
        model=model.eval(), task="binary", image_encoder=getattr(model, "image_encoder", None),
        default_cam_layer=cam, token_layer=model.tokenizer,
        numeric=[f"n{j}" for j in range(f_num)], categorical=[f"c{j}" for j in range(len(cards))],
        omics_columns=[f"g{j}" for j in range(sum(len(x) for x in groups))],
        omics_groups=[list(x) for x in groups], group_names=[f"set{j}" for j in range(len(groups))])


def planted_data(n=160, size=16, spatial_dims=2, seed=0):
    """In-memory planted cohort (:func:`~clinfusion.datasets.synthetic.draw_planted`): label = a faint
    disc at a random place AND the marker (numeric column n0) over a noisy threshold, 4% labels
    flipped; n1 = the correlated distractor ``proxy``, n2 = the label-free ``density``, c0 = sex.

    Returns ``(batch, y [N], truth)``; ``truth`` holds per-row ``pattern``, ``centre``, ``radius``.
    """
    from clinfusion.datasets.synthetic import draw_planted

    d = draw_planted(n, spatial_dims, size, seed=seed)
    cols = d["columns"]
    num = np.stack([cols["marker"], cols["proxy"], cols["density"]], 1).astype(np.float32)
    cat = (cols["sex"] == "F").astype(np.int64)[:, None] + 1
    batch = {"id": [f"r{i}" for i in range(n)], "image": torch.tensor(d["images"][:, None]), "num": torch.tensor(num),
             "num_missing": torch.zeros(n, 3, dtype=torch.bool),
             "cat": torch.tensor(cat), "cat_missing": torch.zeros(n, 1, dtype=torch.bool),
             "omics": torch.zeros(n, 0), "omics_missing": torch.zeros(n, 0, dtype=torch.bool),
             "modality_mask": torch.ones(n, 2, dtype=torch.bool)}
    return batch, torch.tensor(d["label"], dtype=torch.float32), d["truth"]


def take(batch, rows):
    """The sub-batch of ``rows`` (tensor or list of indices)."""
    rows = torch.as_tensor(rows)
    return {k: (v[rows] if torch.is_tensor(v) else [v[i] for i in rows.tolist()]) for k, v in batch.items()}


def train_toy(model, batch, y, epochs=150, lr=1e-2, batch_size=None, seed=0):
    """Adam on BCE: full-batch steps by default, else shuffled mini-batches of ``batch_size``."""
    from clinfusion.explain.common import forward_args

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    for _ in range(epochs):
        for rows in (torch.randperm(n, generator=gen).split(batch_size) if batch_size else [torch.arange(n)]):
            sub = take(batch, rows) if batch_size else batch
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(*forward_args(sub))[:, 0], y[rows])
            loss.backward()
            opt.step()
    return model.eval()

"""FinetuneData: modality variants and embeddings computed once per row."""

import numpy as np
import torch

from clinfusion.downstream.data import FinetuneData


class CountingModel(torch.nn.Module):
    """``fused`` = [num | has_image | has_table]; counts the rows it embeds."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, batch):
        self.seen += len(batch["num"])
        mask = batch["modality_mask"].float()
        return {"fused": torch.cat([batch["num"], mask, batch["image"].flatten(1).abs().sum(1, keepdim=True)], 1)}


def _data(dn_cfg):
    from clinfusion.datasets.cohort import load_cohort
    from clinfusion.datasets.preprocess import TabularPreprocessor

    cfg = dn_cfg()
    cohort = load_cohort(cfg.cohort, require_labels=True)
    pre = TabularPreprocessor(cfg.cohort).fit(cohort, np.arange(len(cohort)))
    return FinetuneData(cohort, pre, cfg.image, None, batch_size=8)


def test_embeddings_are_computed_once_per_row(dn_cfg):
    data = _data(dn_cfg)
    model = CountingModel()
    a = data.embed(model, np.arange(10))
    b = data.embed(model, np.arange(5, 15))
    assert model.seen == 15  # rows 5..9 came from the cache
    assert np.allclose(a[5:], b[:5])
    f_num = data.arrays["num"].shape[1]
    assert np.allclose(b[:, :f_num], data.arrays["num"][5:15])


def test_modality_variants_remove_one_modality(dn_cfg):
    data = _data(dn_cfg)
    model = CountingModel()
    f_num = data.arrays["num"].shape[1]
    rows = np.arange(12)
    full = data.embed(model, rows, "all")
    no_img = data.embed(model, rows, "no_image")
    no_tab = data.embed(model, rows, "no_table")
    assert full[:, f_num].all() and full[:, f_num + 1].all() and (full[:, -1] > 0).all()
    assert not no_img[:, f_num].any() and (no_img[:, -1] == 0).all() and no_img[:, f_num + 1].all()
    assert not no_tab[:, f_num + 1].any() and (no_tab[:, :f_num] == 0).all() and no_tab[:, f_num].all()
    raw = data.raw_matrix(rows, "no_table")
    assert np.isnan(raw).all() and not np.isnan(data.raw_matrix(rows)).all()

"""Explainer + ResultCollector on the trained toy: every output file, its layout and contents."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from xp_helpers import toy_explainable

from clinfusion.config.schema import ExplainConfig, ImageConfig
from clinfusion.downstream.labels import LabelInfo
from clinfusion.explain.pipeline import Explainer
from clinfusion.explain.results import ResultCollector


def _subset(batch, rows):
    return {k: (v[rows] if torch.is_tensor(v) else [v[i] for i in rows]) for k, v in batch.items()}


def test_outputs_of_a_small_explain_run(trained_toy, tmp_path):
    model, batch, y, _ = trained_toy
    rows = torch.nonzero(y == 1)[:4, 0].tolist() + torch.nonzero(y == 0)[:2, 0].tolist()
    sub = _subset(batch, rows)
    sub["num"][1, 0] = 0.0  # sample 1: marker missing
    sub["num_missing"][1, 0] = True
    cfg = ExplainConfig(ig_steps=8, faithfulness_steps=4)
    explainer = Explainer(toy_explainable(model), cfg, ["integrated_gradients", "gradcam"],
                          ["tabular_ig", "feature_ablation"])
    run = SimpleNamespace(label=LabelInfo("binary", ["0", "1"], ["label"]), threshold=0.5, head="mlp",
                          cfg=SimpleNamespace(image=ImageConfig(size=[16, 16])))
    data = SimpleNamespace(cohort=SimpleNamespace(image_paths=[None] * len(batch["id"])))
    col = ResultCollector(tmp_path, run, data, explainer)
    for part in ([0, 1, 2], [3, 4, 5]):  # two batches
        b = _subset(sub, part)
        col.add(explainer.explain_batch(b), b, np.asarray(rows)[part])
    col.finish(["a note"])

    ids = [str(i) for i in sub["id"]]
    tab = pd.read_csv(tmp_path / "tabular.csv")
    assert list(tab["id"]) == ids
    assert list(tab.columns) == ["id", "n0", "n1", "n2", "c0", "n0__missing", "n1__missing", "n2__missing",
                                 "c0__missing"]
    assert np.isnan(tab.loc[1, "n0"]) and tab.loc[1, "n0__missing"] and not tab.loc[0, "n0__missing"]
    assert (tmp_path / "tabular_feature_ablation.csv").exists()
    ranking = pd.read_csv(tmp_path / "global_features.csv")
    assert ranking["feature"][0] == "n0"

    for sid in ids:
        m = np.load(tmp_path / "maps" / f"{sid}.npy")
        assert m.shape == (16, 16)
        assert (tmp_path / "maps" / f"{sid}__gradcam.npy").exists() and (tmp_path / "overlays" / f"{sid}.png").exists()
    assert (tmp_path / "class_maps" / "1.npy").exists()

    share = pd.read_csv(tmp_path / "modality_share.csv")
    assert list(share["id"]) == ids and share["image_share_ablation"].between(0, 1).all()
    faith = json.loads((tmp_path / "faithfulness.json").read_text())
    assert faith["image/integrated_gradients"]["steps"] == 4
    assert set(faith["model_randomization"]) == {"integrated_gradients", "gradcam"}
    assert "ig_vs_ablation_spearman" in faith["table"]
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert set(timings) == {"integrated_gradients", "gradcam", "tabular_ig", "feature_ablation"}
    assert all(t["samples"] == 6 and t["samples_per_s"] > 0 for t in timings.values())
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="sample"') == 6 and "a note" in html

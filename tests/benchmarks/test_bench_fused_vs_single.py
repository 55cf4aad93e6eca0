"""The quality benchmark's "fused beats the best single input" sentence compares each fused model
with every model that reads one input, the probes on one embedding included."""

import pandas as pd

from benchmarks._quality_runs import fused_vs_single


def _runs(aurocs):
    return pd.DataFrame([{"model": m, "label_fraction": 1.0, "auroc": a} for m, a in aurocs.items()])


def test_a_table_embedding_probe_above_every_fused_model_makes_each_verdict_no():
    text = fused_vs_single(_runs({"image_only": 0.59, "tabular_lgbm": 0.55, "linear_table": 0.66,
                                  "linear_image": 0.50, "linear": 0.58, "full": 0.61}), "NIH")
    assert "vs table embedding: linear probe 0.660" in text
    assert "linear no (0.580)" in text and "full no (0.610)" in text


def test_a_fused_model_above_every_single_input_model_is_a_yes():
    text = fused_vs_single(_runs({"image_only": 0.59, "linear_image": 0.62, "linear_table": 0.60,
                                  "full": 0.70}), "NIH")
    assert "vs image embedding: linear probe 0.620" in text and "full yes (0.700)" in text

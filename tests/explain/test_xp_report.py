"""report.html: self-contained (base64 PNGs), cohort values escaped, missing values shown as missing."""

import re

import numpy as np
import pandas as pd

from clinfusion.explain.global_views import class_mean_maps, rank_features, write_class_maps, write_feature_ranking
from clinfusion.explain.plots import figure_to_file, plot_map_views
from clinfusion.explain.report import SampleSection, write_report


def test_report_escapes_and_embeds(tmp_path):
    png = figure_to_file(plot_map_views(np.zeros((8, 8)), np.random.rand(8, 8), "t$x$"), tmp_path / "o.png")
    evil = "<script>alert(1)</script>"
    s = SampleSection(sid=evil, prediction=f"P({evil}) = 0.9", overlay=png,
                      features=[(evil, 0.5, False), ("age", -0.2, False), ("bmi", float("nan"), True)],
                      share={"image_share_ablation": 0.25})
    out = write_report(tmp_path / "report.html", [s], "tabular_ig", [png],
                       {"image/integrated_gradients": {"deletion": 0.1, "deletion_beats_random": True}},
                       notes=[f"note {evil}"])
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("data:image/png;base64,") == 2
    assert not re.search(r'src="(?!data:)', text)  # nothing loaded from outside the page
    assert "missing in the input" in text and "+0.5" in text and "-0.2" in text
    assert "deletion_beats_random" in text


def test_feature_ranking_and_class_maps(tmp_path):
    vals = np.array([[1.0, -3.0, np.nan], [-1.0, 1.0, 0.5]])
    frame = rank_features(vals, ["a", "b", "c"])
    assert list(frame["feature"]) == ["b", "a", "c"]
    np.testing.assert_allclose(frame["mean_abs"], [2.0, 1.0, 0.5])
    assert list(frame["n"]) == [2, 2, 1]
    csv, png = write_feature_ranking(frame, tmp_path)
    assert pd.read_csv(csv)["feature"].tolist() == ["b", "a", "c"] and png.exists()

    maps = np.stack([np.full((4, 4), v) for v in (1.0, 3.0, 5.0, 7.0)])
    means = class_mean_maps(maps, ["0", "1", "0", "1"], np.array([True, True, True, False]))
    np.testing.assert_allclose(means["0"], 3.0)
    np.testing.assert_allclose(means["1"], 3.0)  # the sample without an image is left out
    files = write_class_maps(means, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "class_maps" / "0.npy"), 3.0)
    assert len(files) == 4

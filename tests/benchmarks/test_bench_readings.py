"""The words of a verdict follow the number (explicit thresholds)."""

from benchmarks._readings import ratio_words, share_words, slope_words


def test_slope_words_follow_the_slope():
    assert slope_words(0.05).startswith("flat")
    assert slope_words(0.5).startswith("sub-linear")
    assert slope_words(1.0).startswith("about linear") and slope_words(1.2).startswith("about linear")
    assert slope_words(1.5).startswith("super-linear")
    assert slope_words(1.8).startswith("about quadratic")  # a slope of 1.8 never reads "linear"
    assert "linear" not in slope_words(1.9).replace("super-linear", "")
    assert slope_words(float("nan")) == "not measured"


def test_share_and_ratio_words():
    assert share_words(0.031, 0.05).endswith("met)") and share_words(0.2, 0.05).endswith("missed)")
    assert ratio_words(0.85, 1.5).endswith("missed)") and ratio_words(1.05, 1.10, above=False).endswith("met)")


def test_recipe_table_sd_is_the_sample_sd_over_seeds():
    """Recipe tables (quality, label_efficiency) give the same sd as every other table: over seeds, ddof 1."""
    import statistics

    import pandas as pd

    from benchmarks._recipes import table_rows

    auroc = [0.623, 0.624, 0.614]
    df = pd.DataFrame({"recipe": "clip", "label_fraction": 1.0, "auroc": auroc, "n_train": 165, "seconds": 1.0,
                       "seed": [0, 1, 2]})
    row = table_rows(df)[0]
    assert row["AUROC 1 mean±sd"] == f"{statistics.mean(auroc):.3f} ± {statistics.stdev(auroc):.3f}"  # 0.006, not 0.004
    assert row["AUROC 0.1 mean±sd"] == "n/a"

from pathlib import Path

import pandas as pd

from clinfusion.config.loader import load_config
from clinfusion.config.schema import ImageConfig, OmicsConfig, RunConfig
from clinfusion.datasets.validate import validate_cohort

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "nih_cxr_demo.yaml"


def _run_cfg(cohort_cfg, **cohort_kw):
    return RunConfig(cohort=cohort_cfg.model_copy(update=cohort_kw), image=ImageConfig(size=[16, 16]))


def test_missing_and_corrupt_images_are_listed_and_fatal(tiny_cfg, tiny_table):
    (tiny_table.parent / "img" / "4.png").unlink()
    corrupt = tiny_table.parent / "img" / "7.png"
    corrupt.write_bytes(bytes(range(256)) * 4)
    report = validate_cohort(_run_cfg(tiny_cfg))
    missing = str((tiny_table.parent / "img" / "4.png").resolve())
    assert report.rows == 12 and report.patients == 6 and report.images_found == 10
    assert report.images_missing == [missing]
    assert [p for p, _ in report.images_unreadable] == [str(corrupt.resolve())]
    assert report.fatal[0].startswith("row 5 (id 's04'): ") and missing in report.fatal[0]
    assert "and 1 more image(s) are missing or unreadable" in report.fatal[0]  # the commands' own error line
    text = report.render()
    assert f"missing: {missing}" in text and f"unreadable: {corrupt.resolve()}" in text and "FAILED" in text
    assert report.features == [("age", "numeric", 1 / 12), ("sex", "categorical", 1 / 12)]
    assert report.label_counts == {"0": 6, "1": 6} and report.omics_shape is None
    assert sum(r for r, _ in report.split_sizes.values()) == 12 and report.leakage == []
    skip = validate_cohort(_run_cfg(tiny_cfg, on_bad_image="skip"))
    assert skip.fatal == [] and len(skip.images_missing) == 1 and skip.bad_image_rows == 2
    assert "2 row(s) will be skipped" in skip.render()


def test_given_split_leakage_and_load_errors_are_fatal(tiny_table, tiny_cfg, tmp_path):
    frame = pd.read_csv(tiny_table)
    frame["split"] = ["train", "test"] + ["train"] * 6 + ["val"] * 4
    p = tiny_table.parent / "with_split.csv"
    frame.to_csv(p, index=False)
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(p), split_column="split"))
    assert report.leakage == ["p0 (test/train)"]
    assert report.fatal[0].startswith("patient leakage in split column 'split': 1 patient(s)")
    assert report.split_sizes["val"] == (4, 2)
    omics = tmp_path / "omics.csv"
    pd.DataFrame({"sid": ["s00", "s03", "s07"], "g1": [1.0, 2.0, 3.0], "g2": [0.0, 1.0, 0.5]}).to_csv(omics, index=False)
    with_omics = validate_cohort(_run_cfg(tiny_cfg, omics=OmicsConfig(table=str(omics), key_column="sid")))
    assert with_omics.omics_shape == (12, 2) and with_omics.omics_rows_matched == 3 and with_omics.fatal == []
    assert "omics: 12 x 2, 3 rows matched" in with_omics.render()
    bad = validate_cohort(_run_cfg(tiny_cfg, label_column="lable"))
    assert len(bad.fatal) == 1 and "column 'lable' (cohort.label_column) not found" in bad.fatal[0]
    assert bad.render().splitlines()[:2] == [f"cohort {tiny_table}: could not be loaded", "status: FAILED"]


def test_bundled_nih_config_validates():
    report = validate_cohort(load_config(CONFIG))
    assert report.fatal == []
    assert report.rows == 760 and report.patients == 160 and report.images_found == 760
    assert report.label_counts["0"] + report.label_counts["1"] == 760
    assert {c for c, _, _ in report.features} == {"follow_up", "age", "orig_width", "orig_height",
                                                   "pixel_spacing", "sex", "view"}
    assert sum(p for _, p in report.split_sizes.values()) == 160
    assert "status: OK" in report.render()
    assert report.warnings == []


def test_an_empty_feature_and_a_class_some_split_lacks_are_warned(tiny_table, tiny_cfg):
    """Not fatal (pretraining still runs), but most likely a mistake: a column exported empty, a label typo."""
    frame = pd.read_csv(tiny_table)
    frame["age"] = float("nan")
    frame["label"] = frame["label"].astype(str)
    frame.loc[frame["sid"] == "s05", "label"] = "2"  # one row of a third class: in one split only
    p = tiny_table.parent / "odd.csv"
    frame.to_csv(p, index=False)
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(p)))
    assert report.fatal == []
    assert report.warnings[0].startswith("feature 'age' is empty in every row")
    (cls,) = [w for w in report.warnings if w.startswith("class '2' (1 row(s)) has no row in the ")]
    assert sorted(cls.split(" split:")[0].split("in the ")[1].split("/")) in (["train", "val"], ["test", "train"],
                                                                              ["test", "val"])
    text = report.render()
    assert "warning: feature 'age' is empty" in text and text.splitlines()[-1] == "status: OK"


def test_multilabel_row_with_one_empty_label_is_partly_labelled_not_unlabelled(tiny_cfg, tiny_table, tmp_path):
    frame = pd.read_csv(tiny_table)
    frame["a"] = [0, 1] * 6
    frame["b"] = [1, 0] * 6
    frame.loc[[0, 1], "a"] = None  # one label empty: still trains and scores label b
    frame.loc[2, ["a", "b"]] = None  # both empty: unlabelled
    path = tmp_path / "ml.csv"
    frame.drop(columns=["label"]).to_csv(path, index=False)
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(path), label_column=["a", "b"]))
    assert report.label_task == "multilabel" and report.unlabelled == 1 and report.partly_labelled == 2
    assert "unlabelled rows: 1; partly labelled rows: 2" in report.render()


def test_a_feature_that_gives_the_label_away_is_warned(tiny_table, tiny_cfg):
    """A column derived from the outcome (a diagnosis score or code) is flagged; ordinary ones are not."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 40
    label = np.array([0, 1] * (n // 2))
    frame = pd.DataFrame({
        "sid": [f"s{i:02d}" for i in range(n)], "patient": [f"p{i}" for i in range(n)],
        "image": [f"img/{i % 12}.png" for i in range(n)], "label": label,
        "age": rng.normal(60, 10, n).round(1),  # unrelated
        "marker": label + rng.normal(0, 1.0, n),  # informative, not a copy: AUROC well below 0.99
        "dx_score": label * 3 + rng.normal(0, 0.3, n),  # a copy of the label with noise
        "dx_code": np.where(label == 1, "C34", "Z00"), "sex": rng.choice(["F", "M"], n),
    })
    p = tiny_table.parent / "leaky.csv"
    frame.to_csv(p, index=False)
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(p), exclude=[], categorical=["dx_code", "sex"]))
    flagged = sorted(w.split("'")[1] for w in report.warnings if "alone" in w)
    assert flagged == ["dx_code", "dx_score"], report.warnings
    assert report.fatal == [] and "add it to cohort.exclude" in report.render()


def test_an_exclude_typo_and_a_value_per_row_column_are_warned(tiny_table, tiny_cfg, tmp_path):
    """`exclude: [leek]` for `leak` leaves `leak` a feature; a free-text or date column is a category
    per row. Both are warned (not fatal); an ordinary categorical column is not."""
    import numpy as np

    n = 40
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "sid": [f"s{i:02d}" for i in range(n)], "patient": [f"p{i // 2}" for i in range(n)],
        "image": [f"img/{i % 12}.png" for i in range(n)], "label": [0, 1] * (n // 2),
        "leak": rng.normal(size=n), "notes": [f"seen on day {i}, stable" for i in range(n)],
        "visit_date": pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"), "sex": rng.choice(["F", "M"], n),
    })
    p = tmp_path / "cols.csv"
    frame.to_csv(p, index=False)
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(p), exclude=["leek"], categorical=["sex"]))
    assert report.fatal == []
    assert any(w.startswith("cohort.exclude names 'leek', not a column of the table (did you mean 'leak'?)")
               for w in report.warnings), report.warnings
    per_row = sorted(w.split("'")[1] for w in report.warnings if "different values in" in w)
    assert per_row == ["notes", "visit_date"], report.warnings
    report = validate_cohort(_run_cfg(tiny_cfg, table=str(p), exclude=["notes", "visit_date"], categorical=["sex"]))
    assert report.warnings == [], report.warnings


def test_mixed_image_sizes_are_listed_and_a_stretch_is_warned(tiny_cfg, tiny_table, make_png):
    """Images of other sizes than image.size are listed with their counts; one whose proportions differ
    (32x16 to 16x16) is warned about, one of the same proportions (32x32) only listed."""
    import numpy as np
    from PIL import Image

    same = validate_cohort(_run_cfg(tiny_cfg))
    assert same.image_sizes == {(16, 16): 12} and "sizes:" not in same.render()
    make_png(tiny_table.parent / "img" / "3.png", seed=3, size=32)
    Image.fromarray(np.zeros((32, 16), np.uint8)).save(tiny_table.parent / "img" / "5.png")
    report = validate_cohort(_run_cfg(tiny_cfg))
    assert report.image_sizes == {(16, 16): 10, (32, 32): 1, (32, 16): 1}, report.image_sizes
    text = report.render()
    assert "  sizes: 10 at 16x16, 1 at 32x32, 1 at 32x16; each is resized to image.size 16x16" in text, text
    stretch = [w for w in report.warnings if "stretches" in w]
    assert len(stretch) == 1 and stretch[0].startswith("1 image(s) have another shape than image.size 16x16 "
                                                       "(e.g. 32x16)"), report.warnings
    assert report.fatal == []


def test_stretch_compares_every_pair_of_axes():
    """The stretch is the ratio of the largest to the smallest per-axis scale factor: 64x48 to 64x64 is
    4/3; a 3D volume squeezed along one axis and stretched along another (each < 10% against the first
    axis, 18% against each other) counts too; a uniform rescale is no stretch."""
    from clinfusion.datasets.validate import _stretch

    assert abs(_stretch((64, 48), (64, 64)) - 4 / 3) < 1e-9
    assert abs(_stretch((24, 26, 22), (24, 24, 24)) - 26 / 22) < 1e-9
    assert _stretch((32, 32, 16), (64, 64, 32)) == 1.0

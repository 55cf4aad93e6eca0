"""The planted cohort: what is written matches the generative truth, and the Bayes oracles
computed here from that truth (no clinfusion model) sit in the bands the cohort promises."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import roc_auc_score

from clinfusion.config.loader import load_config
from clinfusion.datasets.synthetic import SITE_MARKER_OFFSET, blob_mask, draw_planted, make_synthetic_cohort


def _read_png(path):
    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


def test_rows_match_the_planted_truth_2d(tmp_path):
    syn = make_synthetic_cohort(tmp_path, n_patients=30, images_per_patient=2, size=32, seed=1)
    frame = pd.read_csv(syn.table)
    assert len(frame) == 60 and list(frame.columns[:3]) == ["id", "patient", "image"]
    assert {"marker", "proxy", "density", "age", "sex", "site", "label"} <= set(frame.columns)
    rows = {r["id"]: r for r in json.loads((tmp_path / "planted.json").read_text())["rows"]}
    centres, radii, contrast = set(), set(), []
    for _, row in frame.iterrows():
        truth = rows[row["id"]]
        assert row["label"] == truth["label_clean"] ^ truth["flipped"]
        assert truth["label_clean"] == truth["pattern"] * truth["crosses"]
        assert np.isclose(row["marker"] - SITE_MARKER_OFFSET[row["site"]], truth["marker_true"], atol=1e-5)
        img = _read_png(tmp_path / row["image"])
        assert img.shape == (32, 32)
        if truth["pattern"]:
            inside = blob_mask(truth["centre"], truth["radius"], 32)
            ring = blob_mask(truth["centre"], truth["radius"] + 3, 32) & ~inside
            contrast.append(img[inside].mean() - img[ring].mean())
            centres.add(tuple(truth["centre"]))
            radii.add(truth["radius"])
        else:
            assert truth["centre"] is None
    # a faint disc (contrast 0.14 over grain of sd 0.06) at a different place and size in every image
    assert 0.08 < np.mean(contrast) < 0.2 and len(centres) == len(contrast) == 30 and len(radii) > 20
    assert sum(r["flipped"] for r in rows.values()) == 2  # 4% of 60 labels flipped
    assert (frame.groupby("patient")[["age", "sex", "site"]].nunique() == 1).all().all()


def test_oracles_from_the_generative_truth():
    """Bayes oracles on a large sample: each input alone ~0.80 AUROC, both together ~0.94."""
    d = draw_planted(12000, spatial_dims=2, size=8, n_patients=4000, seed=5)
    t, y, cols = d["truth"], d["label"], d["columns"]
    pattern = np.asarray(t["pattern"], float)
    # the table's marker minus the site's calibration offset is the true marker
    m = cols["marker"] - np.array([SITE_MARKER_OFFSET[s] for s in cols["site"]])
    assert np.allclose(m, t["marker_true"], atol=1e-5)
    image = roc_auc_score(y, pattern)  # P(label | image) depends on the image only through the pattern
    table = roc_auc_score(y, m)  # P(label | table) is increasing in the true marker
    both = roc_auc_score(y, pattern * (100.0 + m))  # pattern first, then the marker: P(label | both)'s order
    assert 0.75 < image < 0.85 and 0.75 < table < 0.85 and 0.91 < both < 0.97, (image, table, both)
    # the distractor and the raw (site-shifted) marker carry less; the shared column carries nothing
    assert roc_auc_score(y, cols["proxy"]) < roc_auc_score(y, cols["marker"]) < table
    assert abs(roc_auc_score(y, cols["density"]) - 0.5) < 0.03
    # site shift: image intensity and marker distribution differ by site
    site = cols["site"]
    mean_img = {s: d["images"][site == s, :4].mean() for s in ("A", "B", "C")}
    assert mean_img["B"] - mean_img["C"] > 0.07
    assert cols["marker"][site == "B"].mean() - cols["marker"][site == "C"].mean() > 0.4
    # the density strip: the image's last row brightens with the label-free column
    assert np.corrcoef(d["images"][:, -1].mean(1), cols["density"])[0, 1] > 0.8


def test_input_image_misses_the_blob():
    """The brightest pixel of an image is often outside the disc: a map equal to the input fails
    the pointing game (which the explanation tests require a model's map to pass)."""
    d = draw_planted(300, spatial_dims=2, size=32, seed=3)
    hits = []
    for img, p, c, r in zip(d["images"], d["truth"]["pattern"], d["truth"]["centre"], d["truth"]["radius"]):
        if p:
            hits.append(blob_mask(c, r + 1, 32)[np.unravel_index(img.argmax(), img.shape)])
    assert np.mean(hits) < 0.6


def test_3d_nifti_affine_and_blob(tmp_path):
    syn = make_synthetic_cohort(tmp_path, n_patients=6, images_per_patient=1, spatial_dims=3, size=16, seed=0)
    frame = pd.read_csv(syn.table)
    rows = {r["id"]: r for r in syn.planted["rows"]}
    for _, row in frame.iterrows():
        vol = nib.load(str(tmp_path / row["image"]))
        assert vol.shape == (16, 16, 16)
        assert np.allclose(np.diag(vol.affine)[:3], 2.0)
        truth = rows[row["id"]]
        if truth["pattern"]:
            data = vol.get_fdata()
            inside = blob_mask(truth["centre"], truth["radius"], 16)
            assert data[inside].mean() - data[~inside].mean() > 0.05
    assert "image.spatial_dims=3" in syn.overrides and "image.size=[16, 16, 16]" in syn.overrides


def test_missing_rates_and_omics(tmp_path):
    syn = make_synthetic_cohort(
        tmp_path, n_patients=100, images_per_patient=2, size=8, n_clinical=6,
        omics_columns=5, missing_value_rate=0.2, missing_image_rate=0.3, seed=3,
    )
    frame = pd.read_csv(syn.table)
    assert {"noise_0", "noise_1"} <= set(frame.columns)
    assert 0.2 < frame["image"].isna().mean() < 0.4
    for col in ["marker", "age", "sex", "site", "noise_0"]:
        assert 0.12 < frame[col].isna().mean() < 0.28, col
    # images that are listed exist, the others were never written
    n_files = len(list((tmp_path / "images").iterdir()))
    assert n_files == frame["image"].notna().sum()
    omics = pd.read_csv(syn.omics)
    assert list(omics["id"]) == list(frame["id"]) and omics.shape[1] == 6
    col = syn.planted["omics_column"]
    true = np.array([r["marker_true"] for r in syn.planted["rows"]])
    assert np.corrcoef(omics[col], true)[0, 1] > 0.9
    cfg = load_config(None, syn.overrides)
    assert cfg.cohort.omics.table == str(syn.omics.resolve()) and cfg.cohort.label_column == "label"


def test_deterministic_given_seed(tmp_path):
    a = make_synthetic_cohort(tmp_path / "a", n_patients=5, size=16, missing_value_rate=0.2, seed=7)
    b = make_synthetic_cohort(tmp_path / "b", n_patients=5, size=16, missing_value_rate=0.2, seed=7)
    c = make_synthetic_cohort(tmp_path / "c", n_patients=5, size=16, missing_value_rate=0.2, seed=8)
    fa, fb, fc = (pd.read_csv(s.table) for s in (a, b, c))
    pd.testing.assert_frame_equal(fa, fb)
    assert not fa["marker"].equals(fc["marker"])
    for rel in fa["image"]:
        assert np.array_equal(_read_png(tmp_path / "a" / rel), _read_png(tmp_path / "b" / rel))


def test_tiny_cohort_holds_both_labels(tmp_path):
    for seed in range(5):
        syn = make_synthetic_cohort(tmp_path / str(seed), n_patients=4, images_per_patient=2, size=8, seed=seed)
        frame = pd.read_csv(syn.table)
        assert frame["label"].sum() == 2  # a quarter of 8 rows (4% label noise flips none of 8)
        assert len(syn.planted["pattern_ids"]) == 4

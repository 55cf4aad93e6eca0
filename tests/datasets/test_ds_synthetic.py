import json

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

from clinfusion.config.loader import load_config
from clinfusion.datasets.synthetic import make_synthetic_cohort


def _read_png(path):
    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


def test_label_rule_and_pattern_location_2d(tmp_path):
    syn = make_synthetic_cohort(tmp_path, n_patients=20, images_per_patient=2, size=32, seed=1)
    frame = pd.read_csv(syn.table)
    assert len(frame) == 40
    assert list(frame.columns[:3]) == ["id", "patient", "image"]
    pattern_ids = set(syn.planted["pattern_ids"])
    (y0, y1), (x0, x1) = syn.planted["region"]
    assert y0 < y1 <= 16 and x0 < x1 <= 16  # top-left quadrant
    for _, row in frame.iterrows():
        img = _read_png(tmp_path / row["image"])
        assert img.shape == (32, 32)
        inside = img[y0:y1, x0:x1].mean()
        outside = np.delete(img, np.s_[y0:y1], axis=0).mean()
        has_pattern = row["id"] in pattern_ids
        # the bright square is there exactly when planted says so
        assert (inside - outside > 0.3) == has_pattern
        assert row["label"] == int(has_pattern and row["marker"] > 0)
    # both classes present, roughly a quarter positive
    assert 0.05 < frame["label"].mean() < 0.5
    # patient-level columns shared by all rows of the patient
    assert (frame.groupby("patient")[["age", "sex", "site"]].nunique() == 1).all().all()
    assert json.loads((tmp_path / "planted.json").read_text())["region"] == [[y0, y1], [x0, x1]]


def test_neither_modality_alone_is_enough(tmp_path):
    from sklearn.metrics import roc_auc_score

    syn = make_synthetic_cohort(tmp_path, n_patients=100, images_per_patient=2, size=16, seed=2)
    frame = pd.read_csv(syn.table)
    pattern = frame["id"].isin(syn.planted["pattern_ids"]).astype(float)
    auc_img = roc_auc_score(frame["label"], pattern)
    auc_tab = roc_auc_score(frame["label"], frame["marker"] > 0)
    auc_both = roc_auc_score(frame["label"], pattern * (frame["marker"] > 0))
    assert 0.7 < auc_img < 0.95 and 0.7 < auc_tab < 0.95
    assert auc_both == 1.0


def test_3d_nifti_affine_and_region(tmp_path):
    syn = make_synthetic_cohort(tmp_path, n_patients=4, images_per_patient=1, spatial_dims=3, size=16, seed=0)
    frame = pd.read_csv(syn.table)
    (z0, z1), (y0, y1), (x0, x1) = syn.planted["region"]
    for _, row in frame.iterrows():
        vol = nib.load(str(tmp_path / row["image"]))
        assert vol.shape == (16, 16, 16)
        assert np.allclose(np.diag(vol.affine)[:3], 2.0)
        data = vol.get_fdata()
        has_pattern = row["id"] in syn.planted["pattern_ids"]
        assert (data[z0:z1, y0:y1, x0:x1].mean() - data.mean() > 0.3) == has_pattern
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
    ok = frame["marker"].notna()
    assert np.corrcoef(omics.loc[ok, col], frame.loc[ok, "marker"])[0, 1] > 0.9
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
        assert frame["label"].sum() == 2  # a quarter of 8 rows: pattern and marker > 0 are balanced halves
        assert len(syn.planted["pattern_ids"]) == 4 and (frame["marker"] > 0).sum() == 4

"""4D NIfTI (fMRI, diffusion): validate counts them and says what happens; image.volumes_4d
(mean | first | reject) is honoured by the reader that every command uses."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from clinfusion.config.schema import CohortConfig, ImageConfig, RunConfig
from clinfusion.datasets.builder import load_run_cohort
from clinfusion.datasets.images import build_loader, nifti_volumes
from clinfusion.datasets.validate import validate_cohort
from clinfusion.errors import DataError


@pytest.fixture
def nifti_cohort(tmp_path):
    vol = np.zeros((6, 6, 6, 3), np.float32)
    for t, value in enumerate((1.0, 2.0, 6.0)):  # volume t is constant: mean 3, first 1
        vol[..., t] = value
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "dwi.nii.gz")
    nib.save(nib.Nifti1Image(np.full((6, 6, 6), 5.0, np.float32), np.eye(4)), tmp_path / "t1.nii.gz")
    pd.DataFrame({"id": ["a", "b"], "image": ["dwi.nii.gz", "t1.nii.gz"], "x": [1.0, 2.0]}).to_csv(
        tmp_path / "c.csv", index=False)
    return CohortConfig(table=str(tmp_path / "c.csv"), id_column="id", image_column="image"), tmp_path


def _img(policy):
    return ImageConfig(spatial_dims=3, size=[6, 6, 6], intensity={"mode": "none"}, volumes_4d=policy)


@pytest.mark.parametrize("policy, value", [("mean", 3.0), ("first", 1.0)])
def test_reader_honours_the_choice(nifti_cohort, policy, value):
    _, root = nifti_cohort
    out = build_loader(_img(policy))(root / "dwi.nii.gz")
    assert out.shape == (1, 6, 6, 6) and out.mean().item() == pytest.approx(value)
    assert build_loader(_img(policy))(root / "t1.nii.gz").mean().item() == pytest.approx(5.0)  # 3D untouched


def test_reject_makes_the_file_a_bad_image(nifti_cohort):
    cohort_cfg, root = nifti_cohort
    with pytest.raises(DataError, match=r"dwi.nii.gz.*4D NIfTI with 3 volumes and image.volumes_4d=reject"):
        load_run_cohort(cohort_cfg, _img("reject"))
    kept = load_run_cohort(cohort_cfg.model_copy(update={"on_bad_image": "skip"}), _img("reject"), show=False)
    assert kept.ids == ["b"] and kept.skipped[0]["id"] == "a"


def test_validate_counts_and_says_what_happens(nifti_cohort):
    cohort_cfg, root = nifti_cohort
    assert nifti_volumes(root / "dwi.nii.gz") == 3 and nifti_volumes(root / "t1.nii.gz") == 1
    for policy, says in (("mean", "averaged into one image"), ("first", "only their first volume"),
                         ("reject", "count as unreadable")):
        report = validate_cohort(RunConfig(cohort=cohort_cfg, image=_img(policy)))
        assert report.volumes_4d == 1
        line = [ln for ln in report.render().splitlines() if ln.startswith("  4D NIfTI:")]
        assert len(line) == 1 and f"image.volumes_4d={policy}" in line[0] and says in line[0]
        assert bool(report.fatal) == (policy == "reject")

"""Map export: NPY at input and original size, overlays, 3D NIfTI with the original affine, safe names."""

import nibabel as nib
import numpy as np
from PIL import Image

from clinfusion.explain.export import export_sample, resample
from clinfusion.explain.safe import safe_name


def test_safe_name_never_a_path_and_unique():
    assert safe_name("P0001_0") == "P0001_0"
    bad = safe_name("../etc/passwd")
    assert "/" not in bad and not bad.startswith(".")
    assert safe_name("a b") != safe_name("a_b")  # altered names carry a hash
    assert safe_name("") != ""


def test_resample_constant_and_shape():
    out = resample(np.full((4, 4), 2.0, np.float32), (10, 6))
    assert out.shape == (10, 6) and np.allclose(out, 2.0)


def test_2d_export_original_size_from_png(tmp_path):
    src = tmp_path / "img.png"
    Image.fromarray(np.zeros((40, 24), np.uint8)).save(src)  # 40 rows x 24 columns
    attr = np.zeros((16, 16), np.float32)
    attr[:8] = 1.0  # top half
    files = export_sample(tmp_path / "out", "../x y", {"integrated_gradients": attr, "gradcam": attr * 2},
                          "integrated_gradients", np.random.rand(1, 16, 16).astype(np.float32), str(src))
    out = tmp_path / "out"
    stem = safe_name("../x y")
    assert files["map"] == f"maps/{stem}.npy" and (out / files["overlay"]).exists()
    np.testing.assert_array_equal(np.load(out / files["map"]), attr)
    np.testing.assert_array_equal(np.load(out / files["map_gradcam"]), attr * 2)
    orig = np.load(out / files["map_original"])
    assert orig.shape == (40, 24)
    assert orig[:15].min() > 0.9 and orig[25:].max() < 0.1  # the top half stays on top
    assert Image.open(out / files["overlay"]).format == "PNG"
    assert all(".." not in p for p in files.values())


def test_3d_export_keeps_nifti_affine(tmp_path):
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 7.0]
    src = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 12, 10), np.float32), affine), str(src))
    attr = np.random.rand(8, 8, 8).astype(np.float32)
    files = export_sample(tmp_path / "o", "v1", {"occlusion": attr}, "occlusion",
                          np.random.rand(1, 8, 8, 8).astype(np.float32), str(src))
    img = nib.load(str(tmp_path / "o" / files["nifti"]))
    assert img.shape == (20, 12, 10)
    np.testing.assert_allclose(img.affine, affine)
    assert (tmp_path / "o" / files["overlay"]).exists()


def test_missing_original_writes_input_resolution_only(tmp_path):
    files = export_sample(tmp_path, "s", {"gradcam": np.ones((8, 8), np.float32)}, "gradcam",
                          np.ones((1, 8, 8), np.float32), None)
    assert "map_original" not in files and (tmp_path / files["map"]).exists()

import copy
import pickle

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from clinfusion.config.schema import ImageConfig
from clinfusion.datasets.images import build_loader, build_view_augment, check_image
from clinfusion.errors import ConfigError, DataError


def _cfg(**kw):
    return ImageConfig(**kw)


@pytest.fixture()
def gray_png(tmp_path):
    a = np.full((16, 24), 40, np.uint8)
    a[0, :] = 240  # bright first row: tells rows from columns
    path = tmp_path / "gray.png"
    Image.fromarray(a).save(path)
    return path, a


def test_png_is_row_major_scaled_and_channel_converted(gray_png):
    path, a = gray_png
    x = build_loader(_cfg(size=[16, 24]))(str(path))
    assert type(x) is torch.Tensor and x.dtype == torch.float32 and x.shape == (1, 16, 24)
    expected = (a.astype(np.float32) - 40) / 200  # min-max scaling to [0, 1]
    assert torch.allclose(x[0], torch.from_numpy(expected), atol=1e-6)
    x3 = build_loader(_cfg(size=[8, 8], channels=3))(str(path))
    assert x3.shape == (3, 8, 8) and torch.equal(x3[0], x3[1]) and torch.equal(x3[1], x3[2])
    assert x3[0, 0].mean() > x3[0, 4].mean()  # bright row still on top after resize


def test_rgb_to_gray_by_mean_and_rgba_drops_alpha(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 30, 60, 90
    rgb[0, 0] = [0, 0, 0]
    Image.fromarray(rgb).save(tmp_path / "c.png")
    rgba = np.concatenate([rgb, np.zeros((8, 8, 1), np.uint8)], axis=-1)  # fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    none = {"mode": "none"}
    gray = build_loader(_cfg(size=[8, 8], intensity=none))(str(tmp_path / "c.png"))
    assert gray.shape == (1, 8, 8) and gray[0, 1, 1].item() == pytest.approx(60.0)
    x = build_loader(_cfg(size=[8, 8], channels=3, intensity=none))(str(tmp_path / "a.png"))
    assert x.shape == (3, 8, 8) and x[:, 2, 2].tolist() == [30.0, 60.0, 90.0]


def test_npy_zscore_window_and_none(tmp_path):
    arr = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.save(tmp_path / "x.npy", arr)
    p = str(tmp_path / "x.npy")
    raw = build_loader(_cfg(size=[8, 8], intensity={"mode": "none"}))(p)
    assert torch.equal(raw[0], torch.from_numpy(arr))
    z = build_loader(_cfg(size=[8, 8], intensity={"mode": "zscore"}))(p)
    assert z.mean().item() == pytest.approx(0.0, abs=1e-5) and z.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    w = build_loader(_cfg(size=[8, 8], intensity={"mode": "window", "a_min": 10, "a_max": 30}))(p)
    expected = np.clip((arr - 10) / 20, 0, 1)
    assert torch.allclose(w[0], torch.from_numpy(expected), atol=1e-6)
    np.save(tmp_path / "rgb.npy", np.stack([arr, arr * 0, arr * 0]))  # channel-first [3, H, W]
    assert build_loader(_cfg(size=[8, 8], intensity={"mode": "none"}))(str(tmp_path / "rgb.npy"))[0, 7, 7] == pytest.approx(63 / 3)


def test_nifti_orientation_and_spacing(tmp_path):
    vol = np.zeros((8, 8, 8), np.float32)
    vol[0, 2, 3] = 5.0
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])  # first axis runs right-to-left (L)
    nib.save(nib.Nifti1Image(vol, affine), str(tmp_path / "v.nii.gz"))
    p = str(tmp_path / "v.nii.gz")
    plain = build_loader(_cfg(spatial_dims=3, size=[8, 8, 8], intensity={"mode": "none"}))(p)
    assert plain.shape == (1, 8, 8, 8) and plain[0, 0, 2, 3] == 5.0
    ras = build_loader(_cfg(spatial_dims=3, size=[8, 8, 8], orientation="RAS", intensity={"mode": "none"}))(p)
    assert ras[0, 7, 2, 3] == 5.0 and ras.sum() == 5.0  # flipped along the first axis
    coarse = build_loader(_cfg(spatial_dims=3, size=[6, 6, 6], spacing=[4.0, 4.0, 4.0]))(p)
    assert coarse.shape == (1, 6, 6, 6) and type(coarse) is torch.Tensor


def test_dicom_file_gives_plain_tensor_without_header(tmp_path):
    path = get_testdata_file("CT_small.dcm")
    name = str(pydicom.dcmread(path).PatientName)
    assert name  # the test file does carry a patient name
    x = build_loader(_cfg(size=[32, 32], intensity={"mode": "window", "a_min": -1000, "a_max": 400}))(path)
    assert type(x) is torch.Tensor and not hasattr(x, "meta") and x.shape == (1, 32, 32)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert name.encode() not in pickle.dumps(x) and b"Patient" not in pickle.dumps(x)
    assert check_image(get_testdata_file("MR_small.dcm"), _cfg()) is None


def test_dicom_series_folder_sorted_by_position(tmp_path):
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder = tmp_path / "series"
    folder.mkdir()
    z0 = float(src.ImagePositionPatient[2])
    for i in range(4):
        s = copy.deepcopy(src)
        s.InstanceNumber = i + 1
        s.ImagePositionPatient = [float(v) for v in src.ImagePositionPatient[:2]] + [z0 + 2.5 * i]
        s.SOPInstanceUID = pydicom.uid.generate_uid()
        px = s.pixel_array.copy()
        px[:] = 100 * i
        s.PixelData = px.tobytes()
        s.save_as(folder / f"slice_{3 - i}.dcm")  # file names in reverse order of position
    x = build_loader(_cfg(spatial_dims=3, size=[16, 16, 4], intensity={"mode": "none"}))(str(folder))
    assert x.shape == (1, 16, 16, 4)
    slope, intercept = float(src.RescaleSlope), float(src.RescaleIntercept)
    assert x[0, 5, 5].tolist() == pytest.approx([100 * i * slope + intercept for i in range(4)], abs=0.5)
    assert "spatial_dims=2" in check_image(str(folder), _cfg(spatial_dims=2))


def test_wrong_dims_missing_and_undecodable(tmp_path, gray_png):
    path, _ = gray_png
    with pytest.raises(DataError) as e:
        build_loader(_cfg(spatial_dims=3, size=[8, 8, 8]))(str(path))
    msg = str(e.value)
    assert str(path) in msg and "(16, 24)" in msg and "image.spatial_dims=3" in msg and "\n" not in msg
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(tmp_path / "v.nii"))
    assert "(4, 4, 4)" in check_image(str(tmp_path / "v.nii"), _cfg(spatial_dims=2))
    assert "not found" in check_image(str(tmp_path / "nope.png"), _cfg())
    assert "forward slashes" not in check_image(str(tmp_path / "nope.png"), _cfg())
    assert "forward slashes" in check_image(str(tmp_path) + "/imgs\\s000.png", _cfg())  # a Windows-written path
    (tmp_path / "bad.png").write_bytes(b"not an image")
    reason = check_image(str(tmp_path / "bad.png"), _cfg())
    assert "bad.png" in reason and "cannot be decoded" in reason and "\n" not in reason
    assert check_image(str(path), _cfg()) is None


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="image.intensity.a_min"):
        build_loader(_cfg(intensity={"mode": "window", "a_min": 5}))
    with pytest.raises(ConfigError, match=r"image.size=\[8, 8\] must have 3 entries"):
        build_loader(_cfg(spatial_dims=3, size=[8, 8]))
    with pytest.raises(ConfigError, match="image.augment.crop_scale"):
        build_view_augment(_cfg(augment={"crop_scale": [0.9, 0.5]}))


@pytest.mark.parametrize("dims,size", [(2, [16, 16]), (3, [8, 8, 8])])
def test_view_augment_shape_randomness_and_seed(dims, size):
    cfg = _cfg(spatial_dims=dims, size=size, augment={"noise_std": 0.05})
    x = torch.rand(1, *size)
    aug = build_view_augment(cfg)
    aug.set_random_state(3)
    a1, a2 = aug(x.clone()), aug(x.clone())
    assert type(a1) is torch.Tensor and a1.shape == x.shape and a1.dtype == torch.float32
    assert not torch.allclose(a1, a2) and not torch.allclose(a1, x)
    aug.set_random_state(3)
    assert torch.allclose(aug(x.clone()), a1)


@pytest.mark.parametrize("dims,size", [(2, [16, 16]), (3, [8, 8, 8])])
def test_fast_reseeding_draws_what_monai_compose_draws(dims, size):
    """The in-place re-seeding (second call on) gives MONAI's ``Compose.set_random_state`` views."""
    from monai.transforms import Compose

    cfg = _cfg(spatial_dims=dims, size=size, augment={"noise_std": 0.05, "rotate_degrees": 10})
    ours, monai = build_view_augment(cfg), build_view_augment(cfg)
    x = torch.rand(1, *size)
    views = []
    for seed in (3, 11, 2**32 - 5, 3):
        ours.set_random_state(seed)
        Compose.set_random_state(monai, seed=seed)
        views.append(ours(x.clone()))
        assert torch.equal(views[-1], monai(x.clone())), seed
    assert torch.equal(views[0], views[3]) and not torch.allclose(views[0], views[1])


def test_nan_background_becomes_the_lowest_value_and_an_all_nan_file_is_named(tmp_path):
    v = np.full((6, 6, 6), np.nan, np.float32)
    v[1:5, 1:5, 1:5] = 3.0
    v[2, 2, 2], v[3, 3, 3] = 7.0, np.inf
    nib.save(nib.Nifti1Image(v, np.eye(4)), str(tmp_path / "masked.nii.gz"))
    img = build_loader(_cfg(spatial_dims=3, size=[6, 6, 6], intensity={"mode": "none"}))(str(tmp_path / "masked.nii.gz"))
    assert torch.isfinite(img).all()
    assert float(img[0, 0, 0, 0]) == 3.0 and float(img[0, 3, 3, 3]) == 3.0 and float(img[0, 2, 2, 2]) == 7.0
    nib.save(nib.Nifti1Image(np.full((6, 6, 6), np.nan, np.float32), np.eye(4)), str(tmp_path / "empty.nii.gz"))
    reason = check_image(str(tmp_path / "empty.nii.gz"), _cfg(spatial_dims=3, size=[6, 6, 6]))
    assert "empty.nii.gz" in reason and "no finite value" in reason and "\n" not in reason

"""Writing per-sample image maps: NPY at input and original resolution, overlays, NIfTI.

For a sample id ``sid`` (sanitised by :func:`~clinfusion.explain.safe.safe_name`):

* ``maps/<sid>.npy`` ``[*S]`` the primary method's map at the model input size, and
  ``maps/<sid>_original.npy`` resampled (MONAI ``Resize``) to the original image's size;
  other methods as ``maps/<sid>__<method>.npy``;
* 2D: ``overlays/<sid>.png`` (image + map + colour bar);
* 3D: ``maps/<sid>.nii.gz`` the original-size map carrying the original NIfTI's affine
  (identity when the original is not NIfTI), and ``overlays/<sid>.png`` with the three
  orthogonal mid-slices.

The original image is read only for its array size (and a NIfTI's affine); no header field
of a DICOM file is read here. The resampling assumes the input pipeline only resized the
image (no ``image.orientation`` / ``image.spacing``); :func:`export_sample` says so in its
result when that does not hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from monai.transforms import Resize

from clinfusion.explain.plots import figure_to_file, plot_map_views
from clinfusion.explain.safe import safe_name

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def original_geometry(path: Optional[str], spatial_dims: int) -> Tuple[Optional[Tuple[int, ...]], Optional[np.ndarray]]:
    """``(spatial shape, affine or None)`` of the original image file; ``(None, None)`` if absent."""
    if not path or not Path(path).exists():
        return None, None
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        img = nib.load(str(path))
        return tuple(int(s) for s in img.shape[:spatial_dims]), np.asarray(img.affine, dtype=np.float64)
    if name.endswith((".png", ".jpg", ".jpeg", ".bmp")):
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        return (h, w), None
    from clinfusion.datasets.images import ImageReader  # DICOM / npy: pixel array only

    return tuple(int(s) for s in ImageReader(spatial_dims)(path).shape[1:]), None


def resample(attr: np.ndarray, size: Tuple[int, ...]) -> np.ndarray:
    """``attr [*S]`` -> ``[*size]`` (bilinear / trilinear, MONAI ``Resize``)."""
    if tuple(attr.shape) == tuple(size):
        return attr.astype(np.float32)
    mode = "bilinear" if attr.ndim == 2 else "trilinear"
    out = Resize(spatial_size=list(size), mode=mode)(torch.as_tensor(attr[None], dtype=torch.float32))
    return np.asarray(out[0], dtype=np.float32)


def export_sample(out_dir: Path, sid: str, maps: Dict[str, np.ndarray], primary: str, image: np.ndarray,
                  original_path: Optional[str], title: str = "", resize_only: bool = True) -> Dict[str, str]:
    """Write the files of one sample; returns ``{kind: relative path}``.

    Args:
        maps: ``{method: [*S]}`` at input resolution; ``primary`` names the one exported fully.
        image: the model input ``[C, *S]`` (channels averaged for display).
        original_path: the original image file (for its size / affine), or None.
        resize_only: False when orientation / spacing transforms were applied (noted).
    """
    stem = safe_name(sid)
    mdir, odir = out_dir / "maps", out_dir / "overlays"
    mdir.mkdir(parents=True, exist_ok=True)
    odir.mkdir(parents=True, exist_ok=True)
    files: Dict[str, str] = {}
    attr = np.asarray(maps[primary], dtype=np.float32)
    np.save(mdir / f"{stem}.npy", attr)
    files["map"] = f"maps/{stem}.npy"
    for method, m in maps.items():
        if method != primary:
            np.save(mdir / f"{stem}__{method}.npy", np.asarray(m, dtype=np.float32))
            files[f"map_{method}"] = f"maps/{stem}__{method}.npy"
    shape, affine = original_geometry(original_path, attr.ndim)
    if shape is not None:
        orig = resample(attr, shape)
        np.save(mdir / f"{stem}_original.npy", orig)
        files["map_original"] = f"maps/{stem}_original.npy"
        if not resize_only:
            files["note"] = "original-size map resized only; orientation/spacing transforms not inverted"
        if attr.ndim == 3:
            import nibabel as nib

            aff = affine if affine is not None else np.eye(4)
            nib.save(nib.Nifti1Image(orig, aff), str(mdir / f"{stem}.nii.gz"))
            files["nifti"] = f"maps/{stem}.nii.gz"
    fig = plot_map_views(image.mean(axis=0), attr, title or f"{sid} ({primary})")
    figure_to_file(fig, odir / f"{stem}.png")
    files["overlay"] = f"overlays/{stem}.png"
    return files

"""A synthetic multimodal cohort with a planted signal that needs BOTH modalities.

Used by the tests, the demo and the docs: :func:`make_synthetic_cohort` writes images,
``cohort.csv`` (and ``omics.csv``) and ``planted.json`` into a folder and returns the
dotted config overrides that point a :class:`~clinfusion.config.schema.RunConfig` at it.

The planted rule, drawn independently **per image row** (all rows of one patient share
``age``, ``sex`` and ``site``; each row has its own ``marker`` and its own pattern)::

    pattern_present ~ Bernoulli(0.5)       a bright square (2D) / cube (3D) at planted["region"]
    marker          ~ N(0, 1)              clinical column "marker"
    (both drawn as balanced halves, so any cohort of >= 4 rows holds both labels)
    label           = pattern_present AND marker > 0
    density         ~ U(0, 1)              clinical column "density", label-independent: it sets
                                           the brightness of a second square in the opposite
                                           corner, so image and table share a signal that
                                           cross-modal retrieval can learn

so ``P(label=1) = 1/4`` and a perfect single-modality model reaches AUROC 5/6 ~ 0.83
(image: all positives have the pattern, 1/3 of negatives too; table likewise with the
marker), while a model fusing both can reach 1.0.

The label uses the marker drawn before ``missing_value_rate`` blanks cells, so a row with a
missing marker keeps its true label. ``planted["pattern_ids"]`` lists the rows whose image
holds the pattern.

Images are a faint low-frequency field plus fine grain, in ``[0.15, 0.39]``; the pattern adds
``+0.5`` inside the region (so it stands out after min-max or z-score normalisation too).
The region is the same for every image and given in pixel (voxel) array coordinates at
``size``, end-exclusive: ``[[y0, y1], [x0, x1]]`` in 2D
(rows, columns of the PNG) or ``[[z0, z1], [y0, y1], [x0, x1]]`` in 3D (NIfTI array axes
as stored). 2D images are 8-bit grayscale PNG; 3D volumes are float32 NIfTI with a
2 mm isotropic, non-identity affine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pandas as pd

SPACING_3D_MM = 2.0  # voxel spacing written into the synthetic NIfTI affine
BASE_CLINICAL = ("marker", "age", "sex", "site")  # always written; noise columns fill up to n_clinical
SHARED_COLUMN = "density"  # also always written (label-independent, drawn into the image)


@dataclass
class SyntheticCohort:
    table: Path  # cohort.csv
    overrides: List[str]  # dotted config overrides pointing a RunConfig at this cohort
    planted: Dict[str, Any] = field(default_factory=dict)  # region, column, label, rule, pattern_ids (+ omics_column)
    omics: Path | None = None  # omics.csv when omics_columns > 0


def planted_region(spatial_dims: int, size: int) -> List[List[int]]:
    """The fixed pattern box, end-exclusive, per spatial axis: top-left(-front) quadrant."""
    lo = max(size // 8, 1)
    hi = lo + max(size // 4, 2)
    return [[lo, hi] for _ in range(spatial_dims)]


def shared_region(spatial_dims: int, size: int) -> List[List[int]]:
    """The label-independent ``density`` square: the bottom-right(-back) corner, end-exclusive."""
    lo = size - max(size // 8, 1) - max(size // 4, 2)
    hi = lo + max(size // 4, 2)
    return [[lo, hi] for _ in range(spatial_dims)]


def _smooth_noise(rng: np.random.Generator, spatial_dims: int, size: int) -> np.ndarray:
    """Background in [0.15, 0.39]: a faint low-frequency field (coarse grid, block-upsampled,
    amplitude 0.04) plus fine grain (amplitude 0.2).

    The low-frequency part is kept faint on purpose: after per-image min-max scaling a strong
    bright blob in the background would look like the planted pattern.
    """
    coarse_n = max(size // 8, 2)
    coarse = rng.uniform(0.0, 0.04, size=(coarse_n,) * spatial_dims)
    rep = -(-size // coarse_n)  # ceil
    img = coarse
    for ax in range(spatial_dims):
        img = np.repeat(img, rep, axis=ax)
    img = 0.15 + img[(slice(0, size),) * spatial_dims]
    img = img + rng.uniform(0.0, 0.2, size=img.shape)
    return img.astype(np.float32)


def _write_image(img: np.ndarray, path: Path, spatial_dims: int) -> None:
    if spatial_dims == 2:
        from PIL import Image

        Image.fromarray(np.clip(img * 255.0, 0, 255).astype(np.uint8), mode="L").save(path)
    else:
        import nibabel as nib

        affine = np.diag([SPACING_3D_MM, SPACING_3D_MM, SPACING_3D_MM, 1.0])
        affine[:3, 3] = [-10.0, -20.0, 5.0]  # arbitrary origin: the affine is not identity
        nib.save(nib.Nifti1Image(img.astype(np.float32), affine), str(path))


def _clinical(rng: np.random.Generator, patient_of_row: np.ndarray, n_patients: int, n_clinical: int) -> Dict[str, np.ndarray]:
    n_rows = len(patient_of_row)
    cols: Dict[str, np.ndarray] = {
        "marker": rng.normal(0.0, 1.0, size=n_rows),
        SHARED_COLUMN: rng.uniform(0.0, 1.0, size=n_rows),
        "age": rng.integers(30, 86, size=n_patients).astype(float)[patient_of_row],
        "sex": rng.choice(np.array(["M", "F"], dtype=object), size=n_patients)[patient_of_row],
        "site": rng.choice(np.array(["A", "B", "C"], dtype=object), size=n_patients)[patient_of_row],
    }
    for j in range(max(n_clinical - len(BASE_CLINICAL), 0)):
        cols[f"noise_{j}"] = rng.normal(0.0, 1.0, size=n_rows)
    return cols


def _balanced_halves(rng: np.random.Generator, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``pattern`` and ``marker > 0`` flags, each true for half the rows and balanced within the
    other's groups, so even a tiny cohort (>= 4 rows) has both labels (~1/4 positive)."""
    pattern = rng.permutation(np.arange(n_rows) % 2 == 0)
    positive = np.zeros(n_rows, bool)
    for group in (np.flatnonzero(pattern), np.flatnonzero(~pattern)):
        positive[group] = rng.permutation(np.arange(len(group)) % 2 == 0)
    return pattern, positive


def _mask_values(rng: np.random.Generator, cols: Dict[str, np.ndarray], rate: float) -> None:
    """Set exactly ``round(rate * n)`` cells of each clinical column missing (NaN / None), at
    random rows, in place on our copy."""
    if rate <= 0:
        return
    for name, values in cols.items():
        miss = np.zeros(len(values), dtype=bool)
        miss[rng.choice(len(values), size=int(round(rate * len(values))), replace=False)] = True
        if values.dtype == object:
            values[miss] = None
        else:
            values[miss] = np.nan


def make_synthetic_cohort(
    out_dir: str | Path,
    n_patients: int = 60,
    images_per_patient: int = 2,
    spatial_dims: int = 2,
    size: int = 32,
    n_clinical: int = 4,
    omics_columns: int = 0,
    missing_value_rate: float = 0.0,
    missing_image_rate: float = 0.0,
    seed: int = 0,
) -> SyntheticCohort:
    """Write a synthetic cohort into ``out_dir`` and return where it is and what was planted.

    Args:
        out_dir: folder (created) receiving ``images/``, ``cohort.csv``, ``omics.csv``, ``planted.json``.
        n_patients, images_per_patient: rows = ``n_patients * images_per_patient``.
        spatial_dims: 2 (PNG, ``size x size``) or 3 (NIfTI, ``size^3``).
        n_clinical: clinical feature columns; ``marker, age, sex, site`` always, plus
            ``noise_0..`` up to ``n_clinical`` (``density`` is written on top of these).
        omics_columns: G > 0 writes ``omics.csv`` (key ``id``) with G noise columns, one
            of which (``planted["omics_column"]``) is ``marker + N(0, 0.3)``.
        missing_value_rate: share of each clinical column (marker included) set missing.
        missing_image_rate: share of rows whose image cell is empty (no file written).
        seed: everything is deterministic given the seed.

    Returns:
        :class:`SyntheticCohort` with the table path, config overrides and ``planted`` =
        ``{"region", "column": "marker", "label": "label", "rule", ...}``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if size < 8:
        raise ValueError(f"size must be >= 8 to hold the planted pattern, got {size}")
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    n_rows = n_patients * images_per_patient
    patient_of_row = np.repeat(np.arange(n_patients), images_per_patient)
    patients = [f"P{p:04d}" for p in patient_of_row]
    ids = [f"P{p:04d}_{k}" for p, k in zip(patient_of_row, np.tile(np.arange(images_per_patient), n_patients))]

    cols = _clinical(rng, patient_of_row, n_patients, n_clinical)
    pattern, positive = _balanced_halves(rng, n_rows)
    cols["marker"] = np.abs(cols["marker"]) * np.where(positive, 1.0, -1.0)  # still N(0, 1) marginally
    true_marker = cols["marker"].copy()
    label = (pattern & (true_marker > 0)).astype(int)  # from the marker before masking (missing_value_rate)
    has_image = rng.random(n_rows) >= missing_image_rate

    region = planted_region(spatial_dims, size)
    box = tuple(slice(a, b) for a, b in region)
    shared_box = tuple(slice(a, b) for a, b in shared_region(spatial_dims, size))
    density = cols[SHARED_COLUMN].copy()  # before masking: the image always shows the true value
    suffix = ".png" if spatial_dims == 2 else ".nii.gz"
    image_cells: List[Any] = []
    for i in range(n_rows):
        img = _smooth_noise(rng, spatial_dims, size)
        if pattern[i]:
            img[box] += 0.5
        img[shared_box] += 0.35 * density[i]
        if has_image[i]:
            rel = f"images/{ids[i]}{suffix}"
            _write_image(img, out / rel, spatial_dims)
            image_cells.append(rel)
        else:
            image_cells.append(None)

    omics_path = None
    planted: Dict[str, Any] = {
        "region": region,
        "column": "marker",
        "label": "label",
        "rule": "label = 1 if the bright pattern is inside region AND marker > 0, else 0",
        "spatial_dims": spatial_dims,
        "size": size,
        "pattern_ids": [ids[i] for i in range(n_rows) if pattern[i]],  # rows whose image holds the pattern
        "shared_column": SHARED_COLUMN,  # label-independent, shown in the image at shared_region
        "shared_region": shared_region(spatial_dims, size),
    }
    if omics_columns > 0:
        names = [f"gene_{j:04d}" for j in range(omics_columns)]
        omics = rng.normal(0.0, 1.0, size=(n_rows, omics_columns)).astype(np.float32)
        k = omics_columns // 2
        omics[:, k] = true_marker + rng.normal(0.0, 0.3, size=n_rows)
        omics_frame = pd.DataFrame(omics, columns=names)
        omics_frame.insert(0, "id", ids)
        omics_path = out / "omics.csv"
        omics_frame.to_csv(omics_path, index=False)
        planted["omics_column"] = names[k]

    _mask_values(rng, cols, missing_value_rate)
    frame = pd.DataFrame({"id": ids, "patient": patients, "image": image_cells, **cols, "label": label})
    table = out / "cohort.csv"
    frame.to_csv(table, index=False)
    (out / "planted.json").write_text(json.dumps(planted, indent=2))

    size_list = "[" + ", ".join([str(size)] * spatial_dims) + "]"
    overrides = [
        f"cohort.table={json.dumps(str(table.resolve()))}",
        "cohort.id_column=id",
        "cohort.patient_column=patient",
        "cohort.image_column=image",
        "cohort.label_column=label",
        f"image.spatial_dims={spatial_dims}",
        f"image.size={size_list}",
        "image.channels=1",
        # a fixed intensity window (PNG 0..255, NIfTI 0..1): per-image min-max scaling would let
        # a model see the pattern through the image's overall brightness instead of its place
        "image.intensity.mode=window",
        "image.intensity.a_min=0",
        f"image.intensity.a_max={255 if spatial_dims == 2 else 1}",
    ]
    if omics_path is not None:
        overrides += [f"cohort.omics.table={json.dumps(str(omics_path.resolve()))}", "cohort.omics.key_column=id"]
    return SyntheticCohort(table=table, overrides=overrides, planted=planted, omics=omics_path)

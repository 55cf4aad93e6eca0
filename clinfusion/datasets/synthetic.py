"""A synthetic multimodal cohort whose planted signal rewards learning from BOTH modalities.

Used by the tests, the benchmarks and the docs: :func:`make_synthetic_cohort` writes images,
``cohort.csv`` (and ``omics.csv``) and ``planted.json`` into a folder and returns the dotted
config overrides that point a :class:`~clinfusion.config.schema.RunConfig` at it;
:func:`draw_planted` draws the same cohort in memory (arrays, no files).

The generative model, per image row (all rows of one patient share ``age``, ``sex`` and
``site``; each row has its own ``marker``, blob and image)::

    pattern   ~ Bernoulli(1/2)     a faint disc (2D) / ball (3D) of contrast BLOB_CONTRAST at a
                                   random centre with a random radius (planted["rows"][i])
    m         ~ N(0, 1)            the true marker; the table shows marker = m + SITE_MARKER_OFFSET[site]
    crosses   = m + N(0, THRESHOLD_NOISE^2) > 0           (a noisy threshold)
    label     = pattern AND crosses, then LABEL_NOISE of the rows flipped at random
    proxy     = 0.7 * marker + N(0, 0.71^2)               distractor: correlated with the marker, no own signal
    density   ~ U(0, 1)            label-free shared signal: brightens a strip along the image's last rows
                                   (first spatial axis), so image and table share what retrieval can learn
    site      in {A, B, C}         site shift: image intensity offset SITE_INTENSITY[site] and marker offset

``pattern`` and ``crosses`` are drawn as balanced halves (so a cohort of >= 8 rows holds both
labels): marginally each is still Bernoulli(1/2), and ``m`` is drawn from its exact conditional
given ``crosses``. The Bayes oracles computed from this truth (:func:`oracle_scores`) reach
about 0.79 AUROC from the image alone (``pattern``), 0.80 from the table alone (``m``) and 0.95
from both; the 4.5% label noise keeps every model below 1.

The image background is smooth low-frequency clutter (amplitude 0.08) plus fine grain
(sd 0.06) around 0.35: the disc's contrast (0.14) overlaps the background, so the brightest
pixel of an image is often not in the disc (a "map = input image" fails the pointing game).
Blob centres and radii are given in pixel (voxel) array coordinates at ``size``: rows,
columns of the PNG (2D) or NIfTI array axes as stored (3D). 2D images are 8-bit grayscale PNG
with intensities ``value * 255``; 3D volumes are float32 NIfTI with a 2 mm isotropic,
non-identity affine.
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
SHARED_COLUMN = "density"  # also always written (label-free, drawn into the image)
DISTRACTOR_COLUMN = "proxy"  # also always written (correlated with the marker, no signal of its own)
LABEL_NOISE = 0.04  # share of rows whose label is flipped
THRESHOLD_NOISE = 0.15  # sd of the noise added to the true marker before the > 0 threshold
BLOB_CONTRAST = 0.14  # added inside the disc; the background grain has sd 0.06, its clutter amplitude 0.08
SHARED_CONTRAST = 0.3  # the density strip brightens by density * SHARED_CONTRAST
RADIUS_FRACTION = (0.08, 0.14)  # blob radius as a fraction of the image size (at least 1.5 px)
SITES = ("A", "B", "C")
SITE_INTENSITY = {"A": 0.0, "B": 0.05, "C": -0.05}  # added to the whole image
SITE_MARKER_OFFSET = {"A": 0.0, "B": 0.3, "C": -0.3}  # added to the true marker in the table (calibration)


@dataclass
class SyntheticCohort:
    table: Path  # cohort.csv
    overrides: List[str]  # dotted config overrides pointing a RunConfig at this cohort
    planted: Dict[str, Any] = field(default_factory=dict)  # rule, rows (per-row truth), pattern_ids, ... (planted.json)
    omics: Path | None = None  # omics.csv when omics_columns > 0


def strip_rows(size: int) -> int:
    """Height of the ``density`` strip: the last ``strip_rows`` indices of the first spatial axis."""
    return max(size // 8, 1)


def _background(rng: np.random.Generator, spatial_dims: int, size: int, offset: float) -> np.ndarray:
    """Smooth clutter (a coarse random grid, linearly upsampled, amplitude 0.08) + grain (sd 0.06)."""
    import torch

    coarse_n = 4
    coarse = torch.tensor(rng.uniform(0.0, 0.08, size=(1, 1) + (coarse_n,) * spatial_dims), dtype=torch.float32)
    mode = "bilinear" if spatial_dims == 2 else "trilinear"
    smooth = torch.nn.functional.interpolate(coarse, size=(size,) * spatial_dims, mode=mode, align_corners=True)[0, 0]
    img = 0.31 + offset + smooth.numpy() + rng.normal(0.0, 0.06, size=(size,) * spatial_dims)
    return img.astype(np.float32)


def _blob(rng: np.random.Generator, spatial_dims: int, size: int) -> tuple[List[float], float]:
    """A random radius and a centre keeping the disc inside the image and clear of the density strip."""
    radius = max(float(rng.uniform(*RADIUS_FRACTION)) * size, 1.5)
    lo, hi_first, hi = radius, size - strip_rows(size) - radius - 1, size - radius - 1
    centre = [float(rng.uniform(lo, max(hi_first if ax == 0 else hi, lo))) for ax in range(spatial_dims)]
    return centre, radius


def blob_mask(centre: List[float], radius: float, size: int) -> np.ndarray:
    """Boolean mask ``(size,) * D`` of the pixels whose centre lies within ``radius`` of ``centre``."""
    grids = np.meshgrid(*[np.arange(size, dtype=np.float32)] * len(centre), indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    return d2 <= radius ** 2


def _balanced_halves(rng: np.random.Generator, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``pattern`` and ``crosses`` flags, each true for half the rows and balanced within the
    other's groups, so even a tiny cohort holds both labels (~1/4 positive before label noise)."""
    pattern = rng.permutation(np.arange(n_rows) % 2 == 0)
    crosses = np.zeros(n_rows, bool)
    for group in (np.flatnonzero(pattern), np.flatnonzero(~pattern)):
        crosses[group] = rng.permutation(np.arange(len(group)) % 2 == 0)
    return pattern, crosses


def _marker_given_crossing(rng: np.random.Generator, crosses: np.ndarray) -> np.ndarray:
    """Exact draw of ``m ~ N(0, 1)`` given whether ``t = m + N(0, s^2)`` is > 0: ``t`` is a signed
    half-normal with variance ``1 + s^2`` and ``m | t ~ N(t / (1 + s^2), s^2 / (1 + s^2))``."""
    v = 1.0 + THRESHOLD_NOISE ** 2
    t = np.abs(rng.normal(0.0, np.sqrt(v), size=len(crosses))) * np.where(crosses, 1.0, -1.0)
    return t / v + rng.normal(0.0, np.sqrt(THRESHOLD_NOISE ** 2 / v), size=len(crosses))


def draw_planted(n_rows: int, spatial_dims: int = 2, size: int = 32, n_patients: int | None = None,
                 n_clinical: int = 4, seed: int = 0) -> Dict[str, Any]:
    """Draw the planted cohort in memory.

    Returns:
        dict with ``images`` float32 ``[N, *(size,) * D]`` in [0, 1], ``columns`` (clinical columns,
        each ``[N]``), ``label`` int ``[N]``, ``patient_of_row`` ``[N]``, ``truth`` (per-row lists:
        ``pattern``, ``crosses``, ``centre``, ``radius``, ``marker_true``, ``label_clean``, ``flipped``).
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if size < 8:
        raise ValueError(f"size must be >= 8 to hold the planted pattern, got {size}")
    rng = np.random.default_rng(seed)
    n_patients = n_patients or n_rows
    patient_of_row = np.sort(np.arange(n_rows) % n_patients)
    site = rng.choice(np.array(SITES, dtype=object), size=n_patients)[patient_of_row]
    pattern, crosses = _balanced_halves(rng, n_rows)
    m = _marker_given_crossing(rng, crosses)
    marker = m + np.array([SITE_MARKER_OFFSET[s] for s in site])
    clean = (pattern & crosses).astype(int)
    flipped = np.zeros(n_rows, bool)
    flipped[rng.choice(n_rows, size=int(round(LABEL_NOISE * n_rows)), replace=False)] = True
    label = np.where(flipped, 1 - clean, clean)
    cols: Dict[str, np.ndarray] = {
        "marker": marker,
        DISTRACTOR_COLUMN: 0.7 * marker + rng.normal(0.0, 0.71, size=n_rows),
        SHARED_COLUMN: rng.uniform(0.0, 1.0, size=n_rows),
        "age": rng.integers(30, 86, size=n_patients).astype(float)[patient_of_row],
        "sex": rng.choice(np.array(["M", "F"], dtype=object), size=n_patients)[patient_of_row],
        "site": site,
    }
    for j in range(max(n_clinical - len(BASE_CLINICAL), 0)):
        cols[f"noise_{j}"] = rng.normal(0.0, 1.0, size=n_rows)
    images = np.empty((n_rows,) + (size,) * spatial_dims, np.float32)
    centres: List[Any] = []
    radii: List[Any] = []
    strip = (slice(size - strip_rows(size), size),)
    for i in range(n_rows):
        img = _background(rng, spatial_dims, size, SITE_INTENSITY[site[i]])
        img[strip] += SHARED_CONTRAST * cols[SHARED_COLUMN][i]
        centre, radius = _blob(rng, spatial_dims, size)  # drawn for every row: same rng stream either way
        if pattern[i]:
            img[blob_mask(centre, radius, size)] += BLOB_CONTRAST
        centres.append([round(c, 3) for c in centre] if pattern[i] else None)
        radii.append(round(radius, 3) if pattern[i] else None)
        images[i] = np.clip(img, 0.0, 1.0)
    truth = {"pattern": pattern.astype(int).tolist(), "crosses": crosses.astype(int).tolist(), "centre": centres, "radius": radii,
             "marker_true": np.round(m, 6).tolist(), "label_clean": clean.tolist(), "flipped": flipped.astype(int).tolist()}
    return {"images": images, "columns": cols, "label": label, "patient_of_row": patient_of_row, "truth": truth}


def oracle_scores(truth: Dict[str, List]) -> Dict[str, np.ndarray]:
    """Bayes posteriors P(label = 1 | ...) from the generative truth (no model): ``image`` given
    ``pattern``, ``table`` given the true marker, ``both`` given both. Each ``[N]``."""
    from scipy.stats import norm

    f = LABEL_NOISE
    p = np.asarray(truth["pattern"], float)
    cross = norm.cdf(np.asarray(truth["marker_true"], float) / THRESHOLD_NOISE)
    return {"image": f + (1 - 2 * f) * 0.5 * p, "table": f + (1 - 2 * f) * 0.5 * cross,
            "both": f + (1 - 2 * f) * p * cross}


def _write_image(img: np.ndarray, path: Path, spatial_dims: int) -> None:
    if spatial_dims == 2:
        from PIL import Image

        Image.fromarray(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8), mode="L").save(path)
    else:
        import nibabel as nib

        affine = np.diag([SPACING_3D_MM, SPACING_3D_MM, SPACING_3D_MM, 1.0])
        affine[:3, 3] = [-10.0, -20.0, 5.0]  # arbitrary origin: the affine is not identity
        nib.save(nib.Nifti1Image(img.astype(np.float32), affine), str(path))


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
            ``noise_0..`` up to ``n_clinical`` (``proxy`` and ``density`` are written on top).
        omics_columns: G > 0 writes ``omics.csv`` (key ``id``) with G noise columns, one
            of which (``planted["omics_column"]``) is ``marker_true + N(0, 0.3)``.
        missing_value_rate: share of each clinical column (marker included) set missing.
        missing_image_rate: share of rows whose image cell is empty (no file written).
        seed: everything is deterministic given the seed.

    Returns:
        :class:`SyntheticCohort` with the table path, config overrides and ``planted`` (also
        in ``planted.json``): ``rule``, ``column`` ("marker"), ``label``, ``pattern_ids`` and
        ``rows`` = one dict per row with ``id``, ``pattern``, ``crosses``, ``centre``, ``radius``,
        ``marker_true``, ``label_clean``, ``flipped``.
    """
    out = Path(out_dir)
    n_rows = n_patients * images_per_patient
    d = draw_planted(n_rows, spatial_dims, size, n_patients=n_patients, n_clinical=n_clinical, seed=seed)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])  # a second stream: missingness and omics
    patient_of_row = d["patient_of_row"]
    patients = [f"P{p:04d}" for p in patient_of_row]
    ids = [f"P{p:04d}_{k}" for p, k in zip(patient_of_row, np.tile(np.arange(images_per_patient), n_patients))]
    has_image = rng.random(n_rows) >= missing_image_rate
    suffix = ".png" if spatial_dims == 2 else ".nii.gz"
    image_cells: List[Any] = []
    for i in range(n_rows):
        if has_image[i]:
            rel = f"images/{ids[i]}{suffix}"
            _write_image(d["images"][i], out / rel, spatial_dims)
            image_cells.append(rel)
        else:
            image_cells.append(None)

    truth = d["truth"]
    planted: Dict[str, Any] = {
        "rule": (f"label = pattern (a faint disc of contrast {BLOB_CONTRAST} at a random place and size) AND "
                 f"marker_true + N(0, {THRESHOLD_NOISE}^2) > 0, then {LABEL_NOISE:.1%} of labels flipped; "
                 f"marker = marker_true + site offset"),
        "column": "marker",
        "label": "label",
        "spatial_dims": spatial_dims,
        "size": size,
        "label_noise": LABEL_NOISE,
        "threshold_noise": THRESHOLD_NOISE,
        "site_marker_offset": SITE_MARKER_OFFSET,
        "site_intensity": SITE_INTENSITY,
        "distractor_column": DISTRACTOR_COLUMN,
        "shared_column": SHARED_COLUMN,  # label-free, brightens the last strip_rows(size) rows of axis 0
        "shared_strip_rows": strip_rows(size),
        "pattern_ids": [ids[i] for i in range(n_rows) if truth["pattern"][i]],
        "rows": [dict(id=ids[i], **{k: v[i] for k, v in truth.items()}) for i in range(n_rows)],
    }
    cols = {k: v.copy() for k, v in d["columns"].items()}
    if omics_columns > 0:
        names = [f"gene_{j:04d}" for j in range(omics_columns)]
        omics = rng.normal(0.0, 1.0, size=(n_rows, omics_columns)).astype(np.float32)
        k = omics_columns // 2
        omics[:, k] = np.asarray(truth["marker_true"]) + rng.normal(0.0, 0.3, size=n_rows)
        omics_frame = pd.DataFrame(omics, columns=names)
        omics_frame.insert(0, "id", ids)
        omics_path = out / "omics.csv"
        omics_frame.to_csv(omics_path, index=False)
        planted["omics_column"] = names[k]
    else:
        omics_path = None

    _mask_values(rng, cols, missing_value_rate)
    frame = pd.DataFrame({"id": ids, "patient": patients, "image": image_cells, **cols, "label": d["label"]})
    table = out / "cohort.csv"
    frame.to_csv(table, index=False)
    (out / "planted.json").write_text(json.dumps(planted, indent=1))

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
        # a fixed intensity window (PNG 0..255, NIfTI 0..1): per-image scaling would change the
        # disc's contrast with the image's clutter and the site's intensity offset
        "image.intensity.mode=window",
        "image.intensity.a_min=0",
        f"image.intensity.a_max={255 if spatial_dims == 2 else 1}",
    ]
    if omics_path is not None:
        overrides += [f"cohort.omics.table={json.dumps(str(omics_path.resolve()))}", "cohort.omics.key_column=id"]
    return SyntheticCohort(table=table, overrides=overrides, planted=planted, omics=omics_path)

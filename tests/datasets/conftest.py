"""Tiny CSV cohorts written into ``tmp_path`` for the cohort-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinfusion.config.schema import CohortConfig


def write_png(path: Path, seed: int = 0, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def tiny_frame() -> pd.DataFrame:
    """12 rows, 6 patients (2 rows each), binary label constant per patient."""
    return pd.DataFrame({
        "sid": [f"s{i:02d}" for i in range(12)],
        "patient": [f"p{i // 2}" for i in range(12)],
        "image": [f"img/{i}.png" for i in range(12)],
        "age": [50.0, 52, 60, np.nan, 70, 71, 40, 41, 30, 33, 80, 82],
        "sex": ["M", "M", "F", "F", "M", "M", "F", "F", "M", None, "F", "F"],
        "findings": ["x", "x", "none", "none", "y", "y", "none", "none", "x", "x", "none", "none"],
        "label": [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0],
    })


@pytest.fixture
def tiny_table(tmp_path: Path) -> Path:
    """``cohort.csv`` with 12 readable 16x16 PNGs under ``img/``."""
    frame = tiny_frame()
    for i in range(len(frame)):
        write_png(tmp_path / "img" / f"{i}.png", seed=i)
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_cfg(tiny_table: Path) -> CohortConfig:
    return CohortConfig(table=str(tiny_table), id_column="sid", patient_column="patient",
                        image_column="image", label_column="label", exclude=["findings"])


@pytest.fixture
def make_png():
    """``make_png(path, seed=0, size=16)`` writes a random grayscale PNG."""
    return write_png


@pytest.fixture
def frame12() -> pd.DataFrame:
    """The 12-row frame of :func:`tiny_table`, for writing variants of it."""
    return tiny_frame()

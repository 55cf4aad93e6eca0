"""Cohort-level views: features ranked by mean |attribution|, per-class mean image maps.

Outputs (in the explain folder): ``global_features.csv`` (feature, mean_abs, n, rank) and
``global_features.png`` (horizontal bar chart), ``class_maps/<class>.npy`` ``[*S]`` and
``class_maps/<class>.png`` (2D: the map; 3D: its three orthogonal mid-slices).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from clinfusion.explain.plots import figure_to_file, plain, plot_map_views
from clinfusion.explain.safe import safe_name


def rank_features(values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """``values [N, F]`` (NaN = missing, skipped) -> frame sorted by mean |attribution|."""
    with np.errstate(invalid="ignore"):
        absval = np.abs(values)
        n = (~np.isnan(absval)).sum(axis=0)
        mean = np.where(n > 0, np.nansum(absval, axis=0) / np.maximum(n, 1), np.nan)
    frame = pd.DataFrame({"feature": list(names), "mean_abs": mean, "n": n})
    frame = frame.sort_values("mean_abs", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def write_feature_ranking(frame: pd.DataFrame, out_dir: Path, top: int = 20) -> List[Path]:
    """``global_features.csv`` + ``global_features.png`` (top ``top`` features)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = out_dir / "global_features.csv"
    frame.to_csv(csv, index=False)
    shown = frame.dropna(subset=["mean_abs"]).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh([plain(f) for f in shown["feature"]], shown["mean_abs"], color="#3b6ea5")
    ax.set_xlabel("mean |attribution|")
    ax.set_title("clinical / genomic features")
    png = out_dir / "global_features.png"
    figure_to_file(fig, png)
    return [csv, png]


def class_mean_maps(maps: np.ndarray, classes: Sequence[str], has_image: np.ndarray) -> Dict[str, np.ndarray]:
    """Mean map ``[*S]`` per class over samples with an image (``maps [N, *S]``)."""
    out = {}
    cls = np.asarray([str(c) for c in classes])
    for c in sorted(set(cls.tolist())):
        sel = (cls == c) & has_image
        if sel.any():
            out[c] = maps[sel].mean(axis=0)
    return out


def write_class_maps(means: Dict[str, np.ndarray], out_dir: Path) -> List[Path]:
    """``class_maps/<class>.npy`` and ``.png`` for each class."""
    folder = out_dir / "class_maps"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for c, m in means.items():
        stem = safe_name(c)
        np.save(folder / f"{stem}.npy", m.astype(np.float32))
        fig = plot_map_views(None, m, f"mean map, predicted class {c}")
        figure_to_file(fig, folder / f"{stem}.png")
        written += [folder / f"{stem}.npy", folder / f"{stem}.png"]
    return written

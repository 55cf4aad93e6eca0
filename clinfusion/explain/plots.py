"""Matplotlib (Agg) figures of attribution maps: 2D overlays and 3D orthogonal mid-slices."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plain(text: str) -> str:
    """Text shown verbatim by matplotlib (``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


def figure_to_file(fig, path: Path) -> Path:
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def mid_slices(volume: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """The three orthogonal mid-slices of a ``[D, H, W]`` array (axes 0, 1, 2)."""
    d, h, w = volume.shape
    return [("axis 0", volume[d // 2]), ("axis 1", volume[:, h // 2]), ("axis 2", volume[:, :, w // 2])]


def _limits(attr: np.ndarray) -> Tuple[float, float, str]:
    """Symmetric limits and a diverging colour map for signed maps, else 0..max."""
    lo, hi = float(np.nanmin(attr)), float(np.nanmax(attr))
    if lo < 0 < hi:
        m = max(-lo, hi)
        return -m, m, "bwr"
    return (lo, hi if hi > lo else lo + 1e-12, "jet")


def plot_map_views(image: Optional[np.ndarray], attr: np.ndarray, title: str):
    """Figure of ``attr [*S]`` over ``image [*S]`` (gray; None = map alone), with a colour bar.

    2D: one panel; 3D: the three orthogonal mid-slices.
    """
    panels = [("", attr)] if attr.ndim == 2 else mid_slices(attr)
    if image is None:
        imgs: List[Optional[np.ndarray]] = [None] * len(panels)
    else:
        imgs = [image] if image.ndim == 2 else [s for _, s in mid_slices(image)]
    vmin, vmax, cmap = _limits(attr)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 0.8, 3.2), squeeze=False)
    for ax, (name, a), im in zip(axes[0], panels, imgs):
        if im is not None:
            ax.imshow(im, cmap="gray")
        shown = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.5 if im is not None else 1.0)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.colorbar(shown, ax=list(axes[0]), shrink=0.8)
    fig.suptitle(plain(title), fontsize=9)
    return fig


def plot_signed_bars(names: List[str], values: np.ndarray, title: str):
    """Horizontal bars, positive red / negative blue (top features of one sample)."""
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(names) + 1.0))
    ax.barh([plain(n) for n in names[::-1]], values[::-1],
            color=["#c0392b" if v > 0 else "#2e6fba" for v in values[::-1]])
    ax.axvline(0, color="black", lw=0.5)
    ax.set_title(plain(title), fontsize=9)
    return fig

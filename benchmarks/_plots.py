"""Log-log plots (matplotlib Agg) and the fitted log-log slope of a scaling curve."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` on ``log x`` (1 = linear, 2 = quadratic)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    ok = np.isfinite(lx) & np.isfinite(ly)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(lx[ok], ly[ok], 1)[0])


def loglog_plot(path: Path, x: Sequence[float], series: Dict[str, Sequence[float]], xlabel: str,
                title: str, reference_slopes: Sequence[float] = (1.0, 2.0)) -> Path:
    """One panel per series (its own y-axis), with dashed reference slopes through the first point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    xs = np.asarray(x, float)
    for ax, (name, ys) in zip(axes[0], series.items()):
        ys = np.asarray(ys, float)
        ax.loglog(xs, ys, "o-", label=f"{name} (slope {loglog_slope(xs, ys):.2f})")
        for s in reference_slopes:
            ax.loglog(xs, ys[0] * (xs / xs[0]) ** s, "--", lw=0.8, alpha=0.6, label=f"slope {s:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

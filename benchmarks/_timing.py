"""Timing with warm-up and interleaving, so the noise of a shared machine cancels in ratios.

``interleave({"A": fa, "B": fb}, rounds, warmup)`` runs ``fa, fb, fa, fb, ...`` (each call
one timed unit, e.g. one training step) after ``warmup`` untimed calls of each, and
returns every timing. Ratios are taken of medians measured in the same run, so a burst
of load from another process hits both sides.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from benchmarks._device import sync


def timed(fn: Callable[[], object], device: Optional[torch.device] = None) -> float:
    """Seconds for one call of ``fn`` (CUDA synchronised on both sides)."""
    if device is not None:
        sync(device)
    t0 = time.perf_counter()
    fn()
    if device is not None:
        sync(device)
    return time.perf_counter() - t0


def interleave(fns: Dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
               device: Optional[torch.device] = None) -> Dict[str, List[float]]:
    """Warm each function up, then time them in turn for ``rounds`` rounds.

    Returns ``{name: [seconds per call, ...]}`` with ``rounds`` entries each.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: Dict[str, List[float]] = {k: [] for k in fns}
    for r in range(rounds):
        names = list(fns) if r % 2 == 0 else list(reversed(list(fns)))  # ABBA: no order bias
        for k in names:
            out[k].append(timed(fns[k], device))
    return out


def median(xs: List[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def best(xs: List[float]) -> float:
    """Fastest call: the least disturbed by other processes (timeit's convention)."""
    return float(min(xs)) if xs else float("nan")


def ratio(a: List[float], b: List[float]) -> float:
    """Median of ``a`` over median of ``b``."""
    return median(a) / median(b)

"""Words for measured numbers, with explicit thresholds, so a verdict sentence in RESULTS.md
can never say more than its number (a slope of 1.8 never reads "linear")."""

from __future__ import annotations

import math

# (upper bound of the log-log slope, words); the first bound the slope is below wins
SLOPE_WORDS = (
    (0.2, "flat"),
    (0.8, "sub-linear"),
    (1.2, "about linear"),
    (1.8, "super-linear"),
    (math.inf, "about quadratic or steeper"),
)
SLOPE_RULE = "flat < 0.2 <= sub-linear < 0.8 <= about linear <= 1.2 < super-linear < 1.8 <= quadratic"


def slope_words(slope: float) -> str:
    """``"about linear (slope 1.03)"`` etc.; thresholds in :data:`SLOPE_WORDS`."""
    if slope is None or not math.isfinite(slope):
        return "not measured"
    if slope < -0.2:
        return f"decreasing (slope {slope:.2f})"
    for bound, words in SLOPE_WORDS:
        if slope < bound or (words == "about linear" and slope <= bound):
            return f"{words} (slope {slope:.2f})"
    return f"slope {slope:.2f}"


def share_words(share: float, goal: float) -> str:
    """A data-wait share against its goal: ``"12.0% (goal < 5%: missed)"``."""
    if share is None or not math.isfinite(share):
        return "not measured"
    return f"{100 * share:.1f}% (goal < {100 * goal:.0f}%: {'met' if share < goal else 'missed'})"


def ratio_words(ratio: float, goal: float, above: bool = True) -> str:
    """A ratio against a goal (``above``: goal is ratio >= goal, else ratio <= goal)."""
    if ratio is None or not math.isfinite(ratio):
        return "not measured"
    ok = ratio >= goal if above else ratio <= goal
    return f"{ratio:.2f} (goal {'>=' if above else '<='} {goal:g}: {'met' if ok else 'missed'})"

"""The largest batch that fits: double from a start size until a step runs out of memory
(CUDA OOM) or the cap is reached; report the last size that ran."""

from __future__ import annotations

from typing import Callable, Optional

import torch


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _fits(try_step: Callable[[int], None], b: int) -> bool:
    """Whether one step at batch ``b`` runs; out-of-memory is False, any other error raises."""
    try:
        try_step(b)
        return True
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
        return False
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def largest_batch(try_step: Callable[[int], None], start: int, cap: int) -> Optional[int]:
    """``try_step(b)`` runs one training step at batch ``b`` (raising on OOM). Returns the
    largest ``start * 2**k <= cap`` that ran, or None if even ``start`` did not fit
    (then halving from ``start`` down to 1 is tried)."""
    ok: Optional[int] = None
    b = start
    while b <= cap and _fits(try_step, b):
        ok = b
        b *= 2
    b = start // 2
    while ok is None and b >= 1:
        if _fits(try_step, b):
            ok = b
        b //= 2
    return ok

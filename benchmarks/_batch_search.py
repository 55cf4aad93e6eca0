"""The largest batch that fits: double from a start size until a step runs out of memory
(CUDA OOM) or the cap is reached; report the last size that ran."""

from __future__ import annotations

from typing import Callable, Optional

import torch


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def largest_batch(try_step: Callable[[int], None], start: int, cap: int) -> Optional[int]:
    """``try_step(b)`` runs one training step at batch ``b`` (raising on OOM). Returns the
    largest ``start * 2**k <= cap`` that ran, or None if even ``start`` did not fit
    (then halving from ``start`` down to 1 is tried)."""
    ok: Optional[int] = None
    b = start
    while b <= cap:
        try:
            try_step(b)
            ok = b
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            break
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        b *= 2
    if ok is None:
        b = start // 2
        while b >= 1 and ok is None:
            try:
                try_step(b)
                ok = b
            except RuntimeError as exc:
                if not is_oom(exc):
                    raise
                b //= 2
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    return ok

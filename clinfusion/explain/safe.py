"""Turning cohort values (sample ids, class names) into safe file names."""

from __future__ import annotations

import hashlib
import re

_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(value: object, max_len: int = 80) -> str:
    """``value`` with anything outside ``[A-Za-z0-9._-]`` replaced by ``_``; never empty, never
    ``.``/``..``, never a path. Long or altered names get a short hash so they stay unique."""
    text = str(value)
    clean = _BAD.sub("_", text).strip("._") or "x"
    if clean != text or len(clean) > max_len:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        clean = f"{clean[:max_len]}-{digest}"
    return clean


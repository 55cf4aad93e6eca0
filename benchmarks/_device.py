"""Device and precision for benchmarks: CUDA when present, bf16 autocast there, fp32 on CPU.

Nothing is hard-coded to ``cuda``: every benchmark takes ``--device auto|cpu|cuda`` and
asks this module for the autocast context and for synchronisation before reading a clock.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available on this machine")
    return torch.device(name)


def precision(device: torch.device) -> str:
    """``bf16`` on CUDA (autocast), ``fp32`` on CPU (what the toolkit's ``precision: auto`` does)."""
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device) -> ContextManager:
    """bf16 autocast on CUDA; a no-op context on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    """Wait for queued kernels so a wall-clock reading covers them (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

"""Peak memory of a measured region: ``torch.cuda.max_memory_allocated`` on CUDA, peak
resident set size (``VmHWM`` of ``/proc/self/status``) on CPU.

On CPU the kernel's high-water mark is reset by writing ``5`` to ``/proc/self/clear_refs``
(Linux >= 4.0) after ``malloc_trim(0)`` has handed freed heap pages back, so each region
is measured from its own starting point. Where either is unavailable the reading says so
(``reset_ok = False``) and the peak is the process-lifetime one.
"""

from __future__ import annotations

import ctypes
import gc
import re
from dataclasses import dataclass
from pathlib import Path

import torch

MB = 1024.0 ** 2


def _status_kb(field: str) -> float:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.M)
    return float(m.group(1)) if m else float("nan")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class PeakMemory:
    """Use as ``pm = PeakMemory(device); pm.start(); ...; pm.stop()`` then ``pm.peak_mb``
    (absolute peak: RSS on CPU, allocated tensors on CUDA) and ``pm.delta_mb`` (peak minus
    what was in use at ``start``)."""

    device: torch.device
    base_mb: float = float("nan")
    peak_mb: float = float("nan")
    reset_ok: bool = True

    def start(self) -> "PeakMemory":
        _trim()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_mb = torch.cuda.memory_allocated(self.device) / MB
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.reset_ok = False
        self.base_mb = _status_kb("VmRSS") / 1024.0
        return self

    def stop(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / MB
        else:
            self.peak_mb = _status_kb("VmHWM") / 1024.0
        return self

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.base_mb

    @property
    def kind(self) -> str:
        return "cuda max_memory_allocated" if self.device.type == "cuda" else "peak RSS (VmHWM)"

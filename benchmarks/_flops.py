"""Model FLOPs per training step (``torch.utils.flop_counter.FlopCounterMode``) and the
dense bf16 peak of common GPUs, for model FLOPs utilisation (MFU).

MFU = FLOPs of one forward + backward (counted, not estimated) / step time / peak. The
optimizer step and element-wise work are not counted (PaLM's convention, Chowdhery et
al. 2022), so MFU is a lower bound on hardware utilisation.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets.
# Checked in order: the first substring found in the device name wins.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("A6000", 155.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


def peak_tflops(device_name: Optional[str]) -> Optional[float]:
    """The table's bf16 dense peak for ``device_name`` (e.g. ``NVIDIA H100 80GB HBM3``), or None."""
    if not device_name:
        return None
    for key, value in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def count_flops(fwd_bwd: Callable[[], object]) -> int:
    """FLOPs of one call of ``fwd_bwd`` (forward + backward; matmuls/convolutions/attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False)
    with mode:
        fwd_bwd()
    return int(mode.get_total_flops())


def mfu(flops_per_step: float, step_s: float, peak: Optional[float]) -> float:
    """Achieved FLOP/s over the peak (nan when the peak is unknown)."""
    if not peak or step_s <= 0:
        return float("nan")
    return flops_per_step / step_s / (peak * 1e12)

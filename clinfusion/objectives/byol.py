"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"): regress the target network's
projection of one view from the online network's prediction of the other view; the
target is an exponential moving average (EMA) of the online network."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BYOLLoss(nn.Module):
    """``forward(online_pred [B, D], target_proj [B, D]) -> {"byol_loss": []}``.

    ``mean_i (2 - 2 cos(online_pred_i, target_proj_i))`` (the paper's normalised MSE);
    ``target_proj`` is detached. For the symmetric loss pass both view orders stacked along
    the batch: ``online_pred = [q1; q2]``, ``target_proj = [z2'; z1']``.
    """

    def forward(self, online_pred: Tensor, target_proj: Tensor) -> Dict[str, Tensor]:
        if online_pred.shape != target_proj.shape or online_pred.dim() != 2:
            raise ValueError(f"BYOLLoss expects online_pred and target_proj [B, D]; got "
                             f"{tuple(online_pred.shape)} and {tuple(target_proj.shape)}")
        cos = F.cosine_similarity(online_pred, target_proj.detach(), dim=-1)
        return {"byol_loss": (2 - 2 * cos).mean()}


class EMA(nn.Module):
    """EMA copy of ``module`` (the BYOL target): ``theta_t <- decay * theta_t + (1 - decay) * theta``.

    ``update()`` reads the online module given at construction (or ``update(module)``);
    buffers (e.g. BatchNorm statistics) are copied. The target never requires grad; calling
    the EMA runs the target under ``torch.no_grad()``. The online module is held by
    reference only (not registered), so it is not saved twice in a state dict.
    """

    def __init__(self, module: nn.Module, decay: float = 0.996) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1]; got {decay}")
        self.decay = decay
        self.target = copy.deepcopy(module)
        self.target.requires_grad_(False)
        self._online = [module]

    @torch.no_grad()
    def update(self, module: Optional[nn.Module] = None) -> None:
        online = module if module is not None else self._online[0]
        for t, o in zip(self.target.parameters(), online.parameters()):
            t.lerp_(o.detach().to(t.dtype), 1.0 - self.decay)
        for t, o in zip(self.target.buffers(), online.buffers()):
            t.copy_(o)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.target(*args, **kwargs)

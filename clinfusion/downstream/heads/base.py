"""What every head and baseline shares: the fitting context, the predictor face, registries.

A head / baseline is a function ``fit(ctx: HeadContext) -> Predictor`` registered in
:data:`HEADS` (``finetune.heads``) or :data:`BASELINES` (``finetune.baselines``). All of
them see the same rows (``ctx.train_rows`` already reduced to the label fraction).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from clinfusion.config.schema import FinetuneConfig
from clinfusion.downstream.data import FinetuneData
from clinfusion.downstream.task import LabelInfo
from clinfusion.registry import Registry

HEADS = Registry("fine-tuning head")
BASELINES = Registry("baseline")


@dataclass
class HeadContext:
    data: FinetuneData  # cohort view: loaders, cached embeddings, raw features
    info: LabelInfo  # task and classes
    cfg: FinetuneConfig  # the finetune section
    train_rows: np.ndarray  # cohort rows used for training (label fraction applied)
    val_rows: np.ndarray  # cohort rows for the operating threshold
    encoder: torch.nn.Module  # the (pre)trained MultimodalModel: frozen heads share it, others copy it
    new_model: Callable[[], torch.nn.Module]  # a freshly initialised MultimodalModel
    new_image_encoder: Callable[[], torch.nn.Module]  # a freshly initialised ImageEncoder
    seed: int = 0
    work_dir: Optional[Path] = None  # engine-trained models: checkpoints + metrics.csv under <work_dir>/<name>/
    resume: bool = False  # continue engine training from <work_dir>/<name>/checkpoints/last
    device_pref: str = "auto"  # the run's `device` (the engine places each process under torchrun)
    is_main: bool = True  # rank 0 (writes files)

    def encoder_copy(self) -> torch.nn.Module:
        return copy.deepcopy(self.encoder)


class Predictor:
    """A trained head or baseline.

    ``predict(data, rows, variant) -> [len(rows), K_out]`` probabilities (see
    :mod:`clinfusion.downstream.task`); ``variants`` says whether the model takes the
    modality mask (missing-modality evaluation); ``save(dir) -> meta`` writes weights
    (safetensors / LightGBM text, never pickle) and returns the JSON-able head meta.
    """

    name: str = ""
    variants: bool = True

    def predict(self, data: FinetuneData, rows: np.ndarray, variant: str = "all") -> np.ndarray:
        raise NotImplementedError

    def save(self, directory: Path) -> Dict[str, Any]:
        raise NotImplementedError(f"{self.name} cannot be saved")

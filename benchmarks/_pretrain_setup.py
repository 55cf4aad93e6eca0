"""Build the real pretraining pieces (cohort -> datasets -> model -> task -> Trainer) the way
:func:`clinfusion.training.pretrain.run_pretrain` does, but handing back the objects so a
benchmark can time them, plus a *bare* copy of the task trained without the Trainer.

``--tiny`` runs use a small synthetic cohort (:func:`make_synthetic_cohort`) under the
demo config's model so they take seconds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch

from clinfusion.training.engine import move  # noqa: F401  (re-used by the other benchmarks)

from benchmarks._device import autocast

ROOT = Path(__file__).resolve().parent.parent
DEMO_PRETRAIN = ROOT / "configs" / "nih_cxr_demo.yaml"
TINY_OVERRIDES = ["pretrain.batch_size=8", "pretrain.epochs=2", "cohort.exclude=[]", "cohort.categorical=null",
                  "model.image_encoder.width=8", "image.cache=memory"]


def tiny_cohort(work: Path, spatial_dims: int = 2, size: int = 16, patients: int = 16) -> List[str]:
    """A small planted synthetic cohort; returns its config overrides."""
    from clinfusion.datasets.synthetic import make_synthetic_cohort

    synth = make_synthetic_cohort(work / "cohort", n_patients=patients, images_per_patient=2,
                                  spatial_dims=spatial_dims, size=size)
    return list(synth.overrides)


def load_run_config(path: Path, overrides: Sequence[str], device: str) -> Any:
    from clinfusion.config import load_config

    return load_config(path, list(overrides) + [f"device={device}", "pretrain.progress=false"])


def build(cfg: Any, run_dir: Path) -> Tuple[Any, Any, Any]:
    """``(train_ds, val_ds, task)`` exactly as ``run_pretrain`` builds them (same seed)."""
    from clinfusion.models.io import build_model
    from clinfusion.models.pretrain_task import PretrainTask
    from clinfusion.training.pretrain import build_datasets, seed_everything

    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    _, pre, train_ds, val_ds = build_datasets(cfg, run_dir, resume=False)
    model = build_model(cfg, pre.schema)
    task = PretrainTask(model, cfg.pretrain, cfg.model.modality_dropout)
    return train_ds, val_ds, task


def bare_step(task: torch.nn.Module, batch: Dict[str, Any], lr: float, device: torch.device,
              section: Any = None) -> Callable[[], Any]:
    """One forward + backward + AdamW step of a *copy* of ``task`` on a preloaded ``batch``:
    the floor a training loop can reach (no loader, no logging, no checks, no clipping).
    ``section`` (the engine section): its ``compile`` / ``channels_last`` apply to the copy too, so
    the toolkit step is compared with a floor of the same model settings."""
    from clinfusion.training.engine import image_speedups

    bare = copy.deepcopy(task).to(device).train()
    if section is not None:
        image_speedups(bare, section.compile, section.channels_last)
    opt = torch.optim.AdamW(bare.parameters(), lr=lr)
    batch = move(batch, device)

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            loss = bare(batch)["loss"]
        loss.backward()
        opt.step()
        return loss.detach()

    return step

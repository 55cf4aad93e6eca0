"""Helpers for the federated tests: tiny-model config, per-site tables, loading a run's task."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import pandas as pd

from clinfusion.config import load_config
from clinfusion.config.schema import RunConfig

TINY = [
    "model.image_encoder.name=cnn_tiny", "model.image_encoder.width=4",
    "model.tabular_encoder.hidden_size=16", "model.tabular_encoder.num_layers=1",
    "model.tabular_encoder.num_heads=2", "model.tabular_encoder.intermediate_size=32",
    "model.tabular_encoder.dropout=0.0", "model.fusion.dim=16", "model.projection_dim=16",
    "pretrain.batch_size=4", "pretrain.progress=false", "pretrain.log_every=1", "device=cpu",
    "image.augment.rotate_degrees=0", "split.val_fraction=0.0", "split.test_fraction=0.0",
    "federated.runtime=simulation", "federated.rounds=2", "federated.local_steps=1",
]


def fed_config(cohort, extra: Sequence[str] = ()) -> RunConfig:
    return load_config(None, list(cohort.overrides) + TINY + list(extra))


def site_tables(cohort, folder: Path, n_per_site: int, sites: Sequence[str] = ("a", "b"),
                edit: Dict[str, callable] | None = None) -> List[str]:
    """Write ``len(sites)`` disjoint tables of ``n_per_site`` rows (whole patients first) next to the
    cohort's images; ``edit[site](frame) -> frame`` changes one site's table. Returns overrides."""
    frame = pd.read_csv(cohort.table)
    out = []
    for i, site in enumerate(sites):
        part = frame.iloc[i * n_per_site:(i + 1) * n_per_site].copy()
        if edit and site in edit:
            part = edit[site](part)
        path = Path(cohort.table).parent / f"{folder.name}_{site}.csv"
        part.to_csv(path, index=False)
        out.append(f"federated.site_tables.{site}={path}")
    return out


def load_task(run_dir: Path, cfg: RunConfig):
    """The pretraining task (model + heads) of a federated run's ``checkpoints/last``."""
    from clinfusion.datasets.preprocess import TabularPreprocessor
    from clinfusion.federated.local import build_task
    from clinfusion.training.checkpoint import load_checkpoint

    pre = TabularPreprocessor.load(run_dir / "preprocessing.json")
    task = build_task(cfg, pre.schema)
    state = load_checkpoint(run_dir / "checkpoints" / "last", task.model)
    task.load_state_dict(state["extra"]["task_state"], strict=False)
    return task, state

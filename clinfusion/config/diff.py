"""What ``finetune --pretrained`` takes from the pretrained run, said one line per key; what
``pretrain --resume`` and ``finetune --resume`` may change in a run (:func:`resume_differences`).

The pretrained run's ``model`` and ``image`` sections win (its weights only load into the
architecture they were trained with, and its preprocessing expects its image settings);
only the loading settings ``image.cache`` / ``image.cache_dir`` come from this run's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

PRETRAINED_SECTIONS = ("model", "image")
THIS_RUN_KEYS = ("image.cache", "image.cache_dir")  # where images are cached is this run's choice


def _flat(d: Any, prefix: str = "") -> Dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: Dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def pretrained_differences(cfg: Any, pretrained_cfg: Any) -> List[str]:
    """One line per ``model.*`` / ``image.*`` key whose value differs, naming the value that wins."""
    lines = []
    for section in PRETRAINED_SECTIONS:
        ours = _flat(getattr(cfg, section).model_dump(mode="json"), f"{section}.")
        theirs = _flat(getattr(pretrained_cfg, section).model_dump(mode="json"), f"{section}.")
        for key in sorted(set(ours) | set(theirs)):
            a, b = ours.get(key), theirs.get(key)
            if a == b or key == "image.spatial_dims":  # another dimensionality is an error (finetune says so)
                continue
            if key in THIS_RUN_KEYS:
                lines.append(f"{key}: this config {a!r}, pretrained run {b!r} -> {a!r} wins (a loading setting of this run)")
            else:
                lines.append(f"{key}: this config {a!r}, pretrained run {b!r} -> {b!r} wins (the pretrained run's "
                             f"{section} section is kept so its weights and preprocessing load)")
    return lines


# what `pretrain --resume` may change: more epochs, and how the data is loaded and logged; everything
# else (model, image, cohort, split, losses, optimiser, seed) must equal the run's, or its checkpoint
# would not load or would continue a different training
RESUME_SECTIONS = ("model", "image", "cohort", "split", "pretrain", "seed")
_LOADING = ("progress", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "checkpoint_every",
            "checkpoint_every_steps", "log_every", "compile", "channels_last")
RESUME_FREE = THIS_RUN_KEYS + ("pretrain.epochs", "pretrain.retrieval_every") + tuple(f"pretrain.{k}" for k in _LOADING)
# `finetune --resume`: the models already trained must be those the run would train again, so every
# setting of its cohort, split, model and fine-tuning stays (only how data are loaded and logged may change)
FINETUNE_RESUME_SECTIONS = ("model", "image", "cohort", "split", "finetune", "seed")
FINETUNE_RESUME_FREE = THIS_RUN_KEYS + tuple(f"finetune.{k}" for k in _LOADING)


def resume_differences(cfg: Any, stored: Any, sections=RESUME_SECTIONS, free=RESUME_FREE) -> List[str]:
    """``key: run X, this config Y`` per setting of ``sections`` that ``--resume`` must keep (all but
    ``free``) and ``cfg`` changes; the defaults are ``pretrain --resume``'s."""
    ours = _flat(cfg.model_dump(mode="json", include=set(sections)))
    theirs = _flat(stored.model_dump(mode="json", include=set(sections)))
    return [f"{k}: run {theirs.get(k)!r}, this config {ours.get(k)!r}" for k in sorted(set(ours) | set(theirs))
            if k not in free and ours.get(k) != theirs.get(k)]


def check_resume_config(cfg: Any, run_dir: Path, sections=RESUME_SECTIONS, free=RESUME_FREE,
                        may_change: str = "only pretrain.epochs and loading settings may change") -> Optional[Any]:
    """The interrupted run's stored config (None when ``run_dir`` has no ``config.yaml``), after
    checking that ``--resume`` with ``cfg`` keeps every setting of ``sections`` but ``free``.

    Raises:
        ConfigError: one line naming the first differing key (and how many more), the run untouched.
    """
    from clinfusion.config.loader import load_config
    from clinfusion.errors import ConfigError

    stored_path = Path(run_dir) / "config.yaml"
    if not stored_path.is_file():
        return None
    stored = load_config(stored_path)
    diffs = resume_differences(cfg, stored, sections, free)
    if diffs:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise ConfigError(f"--resume {str(run_dir)!r}: {diffs[0]}{more}: resume with the run's settings "
                          f"({may_change}), or start a new run with another --out")
    return stored

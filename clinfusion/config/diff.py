"""What ``finetune --pretrained`` takes from the pretrained run, said one line per key; what
``pretrain --resume`` may change in a run (:func:`resume_differences`).

The pretrained run's ``model`` and ``image`` sections win (its weights only load into the
architecture they were trained with, and its preprocessing expects its image settings);
only the loading settings ``image.cache`` / ``image.cache_dir`` come from this run's config.
"""

from __future__ import annotations

from typing import Any, Dict, List

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
            if a == b:
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
RESUME_FREE = THIS_RUN_KEYS + ("pretrain.epochs", "pretrain.progress", "pretrain.num_workers", "pretrain.pin_memory",
                               "pretrain.persistent_workers", "pretrain.prefetch_factor", "pretrain.checkpoint_every",
                               "pretrain.checkpoint_every_steps", "pretrain.retrieval_every", "pretrain.log_every",
                               "pretrain.compile", "pretrain.channels_last")


def resume_differences(cfg: Any, stored: Any) -> List[str]:
    """``key: run X, this config Y`` per setting ``pretrain --resume`` must keep but ``cfg`` changes."""
    ours = _flat(cfg.model_dump(mode="json", include=set(RESUME_SECTIONS)))
    theirs = _flat(stored.model_dump(mode="json", include=set(RESUME_SECTIONS)))
    return [f"{k}: run {theirs.get(k)!r}, this config {ours.get(k)!r}" for k in sorted(set(ours) | set(theirs))
            if k not in RESUME_FREE and ours.get(k) != theirs.get(k)]

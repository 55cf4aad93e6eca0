"""What ``finetune --pretrained`` takes from the pretrained run, said one line per key.

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

"""Config keys that name a registered component, checked against the live registry.

A key such as ``model.fusion.name`` is a plain ``str`` in the schema (never a closed
``Literal``), so a plug-in the user registered before loading the config
(``@FUSIONS.register("mine")``) is accepted; an unknown name is one
:class:`~clinfusion.errors.ConfigError` line naming the key, the value, the closest
registered name and all of them. Owners of other registries add their keys with
:func:`register_named_key` (e.g. ``finetune.heads``).
"""

from __future__ import annotations

import difflib
from importlib import import_module
from typing import Any, Dict, List

from clinfusion.errors import ConfigError

# dotted config key -> "module:REGISTRY" (imported only when a config is checked)
NAMED_KEYS: Dict[str, str] = {
    "model.fusion.name": "clinfusion.fusion:FUSIONS",
    "model.image_encoder.name": "clinfusion.encoders.image:IMAGE_ENCODERS",
    "finetune.heads": "clinfusion.downstream.models:HEADS",
    "finetune.baselines": "clinfusion.downstream.models:BASELINES",
}


def register_named_key(key: str, registry: str) -> None:
    """Check config ``key`` (a name or a list of names) against ``registry`` (``"module:ATTRIBUTE"``)."""
    NAMED_KEYS[key] = registry


def _value(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


def check_name(key: str, value: str, registry: Any) -> None:
    """One-line ConfigError when ``value`` is not registered in ``registry`` (a :class:`~clinfusion.registry.Registry`)."""
    if value in registry:
        return
    names: List[str] = registry.names()
    close = difflib.get_close_matches(value, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"config key '{key}' got {value!r}: not a registered {registry.kind}{hint}; registered: "
                      f"{', '.join(names)} (a plug-in must be registered before the config is loaded)")


def check_registered_names(cfg: Any) -> None:
    """Check every key of :data:`NAMED_KEYS` present in ``cfg`` (a ``RunConfig``)."""
    for key, where in NAMED_KEYS.items():
        value = _value(cfg, key)
        if value is None:
            continue
        module, attr = where.split(":")
        registry = getattr(import_module(module), attr)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            check_name(key, v, registry)

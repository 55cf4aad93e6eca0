"""Walk the config schema (RunConfig and every nested section): one entry per leaf key.

Shared by the schema-wide tests (bad values, every key is read). New sections added by
anyone are walked automatically.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from clinfusion.config.schema import RunConfig


@dataclass
class Leaf:
    key: str  # dotted path, e.g. pretrain.lr
    name: str  # the field name
    owner: type  # the section class
    kind: str  # "number" | "list" | "other"
    is_int: bool = False
    bounds: Tuple[Any, ...] = ()  # annotated_types constraints (Gt/Ge/Lt/Le) of the number (or list item)
    choices: Tuple[Any, ...] = ()  # Literal numbers (e.g. spatial_dims 2/3)


def _strip_optional(ann: Any) -> Any:
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else ann
    return ann


def _number(ann: Any, metadata: List[Any]) -> Optional[Tuple[bool, Tuple[Any, ...], Tuple[Any, ...]]]:
    """(is_int, bounds, literal choices) when ``ann`` is a number (or numeric Literal)."""
    meta = list(metadata)
    if typing.get_origin(ann) is typing.Annotated:
        base, *extra = typing.get_args(ann)
        for e in extra:
            meta += list(getattr(e, "metadata", [e]))
        ann = base
    if typing.get_origin(ann) is typing.Literal:
        vals = typing.get_args(ann)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return isinstance(vals[0], int), (), vals
        return None
    if ann in (int, float):
        return ann is int, tuple(m for m in meta if isinstance(m, (Gt, Ge, Lt, Le))), ()
    # pydantic's PositiveInt / PositiveFloat are Annotated aliases
    return None


def walk(model: type = RunConfig, prefix: str = "") -> Iterator[Leaf]:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = _strip_optional(field.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from walk(ann, key + ".")
            continue
        num = _number(ann, field.metadata)
        if num is not None:
            yield Leaf(key, name, model, "number", num[0], num[1], num[2])
            continue
        if typing.get_origin(ann) in (list, List):
            (item,) = typing.get_args(ann)
            inner = _number(item, [])
            if inner is not None:
                yield Leaf(key, name, model, "list", inner[0], inner[1], inner[2])
                continue
        yield Leaf(key, name, model, "other")


def out_of_range(leaf: Leaf) -> Optional[Any]:
    """A value just outside the leaf's valid range (None when unbounded)."""
    if leaf.choices:
        return max(leaf.choices) + 1
    for b in leaf.bounds:
        if isinstance(b, Gt):
            return b.gt
        if isinstance(b, Ge):
            return b.ge - 1 if leaf.is_int else b.ge - 0.5
        if isinstance(b, Lt):
            return b.lt
        if isinstance(b, Le):
            return b.le + 1
    return None

"""A tiny named registry, the pattern used for encoders, fusions, losses, heads, methods.

Example::

    ENCODERS = Registry("image encoder")

    @ENCODERS.register("resnet18")
    def resnet18(**kw): ...

    ENCODERS.create("resnet18", spatial_dims=2)
    ENCODERS.names()   # ['resnet18', ...]

An unknown name raises :class:`~clinfusion.errors.ConfigError` listing the valid ones
and the closest match.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterator, List, TypeVar

from clinfusion.errors import ConfigError

T = TypeVar("T")


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj  # type: ignore[assignment]
            return obj

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{hint} Valid names: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

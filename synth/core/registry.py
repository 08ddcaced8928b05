"""Name -> class registries, so a network, loss or dataset is added by writing one module and naming it.

A leaf module: every layer may import it. Registries are filled by the ``register`` decorator when the module
defining the class is imported (each package's ``__init__`` imports its modules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synth.core.errors import OptionError


class Registry:
    """A named table of constructors, e.g. ``GENERATORS.get("global")``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that files the decorated class or function under ``name``."""

        def add(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> Callable[..., Any]:
        """The entry called ``name``; an OptionError listing the known names otherwise."""
        if name not in self._entries:
            raise OptionError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

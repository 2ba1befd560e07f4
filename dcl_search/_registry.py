"""One small registry type, used for models, gates, datasets and search spaces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dcl_search._errors import RegistryError
from dcl_search._plugins import load_plugins

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping name → entry (usually a factory) that users extend without editing core files.

    Lookups first load the user's plugin modules (see :mod:`dcl_search._plugins`).

    >>> models = Registry("model")
    >>> @models.register("mlp")
    ... def mlp(num_classes: int, in_channels: int) -> object: ...
    >>> models.names()
    ['mlp']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator adding an entry under ``name``; refuses to silently replace one."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")

        def add(entry: T) -> T:
            if name in self._entries and not overwrite:
                raise ValueError(
                    f"A {self.kind} named {name!r} is already registered; "
                    "pass overwrite=True to replace it."
                )
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises listing the known ones."""
        load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.kind} {name!r}; {self.known()}") from None

    def known(self) -> str:
        """The end of a message about an unknown name: the known ones, and how to add one
        (a registration in the user's own script never reaches the CLI or Ray's workers)."""
        return f"known {self.kind}s: {', '.join(self.names())} (or your own, through --plugin)"

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        load_plugins()
        return len(self._entries)

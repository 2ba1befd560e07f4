"""One small registry type, used for models, gates, datasets and search spaces."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
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

    ``builtin`` maps a module to the entries it registers when imported: they are known
    (``in``, ``names()``) without importing it, and the first ``get`` imports it. A search's
    driver checks model, gate and dataset names this way without importing torch, which only
    its workers need (2 s of a search's start, benchmarks/README.md, "Search overhead").
    """

    def __init__(self, kind: str, builtin: Mapping[str, Iterable[str]] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtin = {  # name → the module that registers it
            name: module for module, names in (builtin or {}).items() for name in names
        }

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator adding an entry under ``name``; refuses to silently replace one."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")

        def add(entry: T) -> T:
            module = self._unimported(name)
            if module is not None and module != getattr(entry, "__module__", None):
                self._import_builtin(name)  # first, so that another entry replaces it or is refused
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
        if isinstance(name, str) and self._unimported(name):
            self._import_builtin(name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.kind} {name!r}; {self.known()}") from None

    def _unimported(self, name: str) -> str | None:
        """The module of the built-in ``name`` while it has not registered it yet."""
        return None if name in self._entries else self._builtin.get(name)

    def _import_builtin(self, name: str) -> None:
        module = self._builtin[name]
        importlib.import_module(module)
        if name not in self._entries:
            raise RegistryError(f"{module} did not register the built-in {self.kind} {name!r}")

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is a built-in entry, not replaced by a user's (without importing)."""
        load_plugins()
        module = self._builtin.get(name)
        if module is None:
            return False
        entry = self._entries.get(name)
        return entry is None or getattr(entry, "__module__", None) == module

    def known(self) -> str:
        """The end of a message about an unknown name: the known ones, and how to add one
        (a registration in the user's own script never reaches the CLI or Ray's workers)."""
        return f"known {self.kind}s: {', '.join(self.names())} (or your own, through --plugin)"

    def names(self) -> list[str]:
        load_plugins()
        return sorted({*self._entries, *self._builtin})

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries or name in self._builtin

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

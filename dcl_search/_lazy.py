"""Package attributes imported on first use (PEP 562), so that importing a package for its
light parts (names, settings, registries) does not import torch.

A search's driver only checks names and settings and runs Ray Tune; torch is imported by the
trial workers. Importing it in the driver too cost 2 s of every search's start, on the path to
the first trial (benchmarks/README.md, "Search overhead").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: attribute ``name`` comes from the
    submodule ``exports[name]`` (relative to ``package``), imported the first time it is read."""

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)  # read once, then a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*exports, *vars(importlib.import_module(package))})

    return __getattr__, __dir__

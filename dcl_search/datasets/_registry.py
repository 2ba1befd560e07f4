"""The dataset registry and the data folder: no torch needed (see :mod:`dcl_search._lazy`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dcl_search._registry import Registry

if TYPE_CHECKING:
    from dcl_search.datasets._base import RawDataset

DATA_ENV_VAR = "DCL_SEARCH_DATA"
DEFAULT_DATA_DIR = Path("data")

Loader = Callable[[Path], "RawDataset"]

_BUILTIN = {
    "dcl_search.datasets._cifar": ("cifar10", "cifar100"),
    "dcl_search.datasets._digits": ("digits",),
    "dcl_search.datasets._imagefolder": ("imagefolder", "tiny-imagenet"),
    "dcl_search.datasets._imagenet32": ("imagenet32",),
    "dcl_search.datasets._stl10": ("stl10",),
    "dcl_search.datasets._svhn": ("svhn",),
}

DATASETS: Registry[Loader] = Registry("dataset", builtin=_BUILTIN)

# built-in datasets whose data ships inside an installed package (scikit-learn's digits)
_PACKAGED = frozenset({"digits"})


def packaged_dataset(name: str) -> bool:
    """Whether ``name`` is a built-in dataset whose data ships with an installed package, so
    that nothing of the user's can be missing or malformed (a user's loader registered under
    the same name reads whatever it reads: False)."""
    return name in _PACKAGED and DATASETS.is_builtin(name)


def register_dataset(name: str, *, overwrite: bool = False) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(data_dir: Path) -> RawDataset`` under ``name``.

    >>> @register_dataset("my-set")  # doctest: +SKIP
    ... def load_my_set(data_dir: Path) -> RawDataset: ...
    """
    return DATASETS.register(name, overwrite=overwrite)


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` itself, else ``$DCL_SEARCH_DATA``, else ``./data``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()

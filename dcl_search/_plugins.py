"""Users' own models, gates and datasets, loaded in every process that looks one up.

A registration made in a user's script exists in that process only, but a search trains in
Ray workers. Registrations that must reach them live in plugin modules: the modules or ``.py``
files named in ``$DCL_SEARCH_PLUGINS`` (comma-separated; ``--plugin`` adds to it), and the
``dcl_search.plugins`` entry points of installed packages. Every registry lookup loads the
ones not loaded yet, so a worker started with the driver's environment has them too.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from dcl_search._errors import DCLSearchError

PLUGINS_ENV_VAR = "DCL_SEARCH_PLUGINS"
ENTRY_POINT_GROUP = "dcl_search.plugins"

_loaded: set[str] = set()


class PluginError(DCLSearchError, ImportError):
    """A plugin module is missing or failed while loading."""


def plugin_specs() -> list[str]:
    return [s.strip() for s in os.environ.get(PLUGINS_ENV_VAR, "").split(",") if s.strip()]


def _absolute(spec: str) -> str:
    return str(Path(spec).expanduser().resolve()) if spec.endswith(".py") else spec


def add_plugins(specs: Iterable[str]) -> None:
    """Adds modules or ``.py`` files to ``$DCL_SEARCH_PLUGINS`` and loads them now, so a broken
    plugin fails before any work. Files are made absolute, also those already in the variable:
    Tune runs each trial in its own folder, where a relative path names another file."""
    specs = [_absolute(s) for s in [*plugin_specs(), *specs]]
    os.environ[PLUGINS_ENV_VAR] = ",".join(dict.fromkeys(specs))
    load_plugins()


@functools.cache
def _load_entry_points() -> None:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _guarded(f"entry point {entry.name} = {entry.value}", entry.load)


def load_plugins() -> None:
    """Imports every plugin not imported yet in this process (cheap once they are)."""
    _load_entry_points()
    for spec in map(_absolute, plugin_specs()):
        if spec not in _loaded:
            _loaded.add(spec)  # first: the plugin's own registrations look things up too
            _guarded(f"${PLUGINS_ENV_VAR}: {spec}", lambda spec=spec: _import(spec))


def _guarded(where: str, load) -> None:
    try:
        load()
    except DCLSearchError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise PluginError(f"{where}: {type(error).__name__}: {first}") from error


def _import(spec: str) -> None:
    """Imports a module name, or a ``.py`` file given by its absolute path."""
    if not spec.endswith(".py"):
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as error:
            if error.name and spec.startswith(error.name):
                raise PluginError(
                    f"${PLUGINS_ENV_VAR}: no module named {spec!r} (a module on the Python path, "
                    "or a path to a .py file)"
                ) from None
            raise
        return
    path = Path(spec)
    if not path.is_file():
        raise PluginError(f"${PLUGINS_ENV_VAR}: {spec}: no such file")
    name = f"dcl_search_plugin_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # pickled classes of the plugin find their module again
    module_spec.loader.exec_module(module)

"""Registries: built-in entries are known by name before their module (and torch) is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dcl_search._errors import RegistryError
from dcl_search._registry import Registry

BUILTIN_MODULE = """\
from {registry_module} import things


@things.register("alpha")
def alpha() -> str:
    return "built-in alpha"


@things.register("beta")
def beta() -> str:
    return "built-in beta"
"""


@pytest.fixture
def things(tmp_path: Path, monkeypatch) -> Iterator[tuple[Registry, str]]:
    """A registry whose built-ins ``alpha`` and ``beta`` live in a module not imported yet, and
    that module's name."""
    name = f"builtin_things_{tmp_path.name}"
    registry_module = f"{name}_registry"
    registry = Registry("thing", builtin={name: ("alpha", "beta")})
    holder = type(sys)(registry_module)
    holder.things = registry
    monkeypatch.setitem(sys.modules, registry_module, holder)
    (tmp_path / f"{name}.py").write_text(BUILTIN_MODULE.format(registry_module=registry_module))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield registry, name
    sys.modules.pop(name, None)


def test_builtin_names_are_known_without_importing_their_module(things) -> None:
    things, module = things
    assert things.names() == ["alpha", "beta"] and len(things) == 2
    assert "alpha" in things and "gamma" not in things
    assert "known things: alpha, beta" in things.known()
    assert module not in sys.modules


def test_the_first_lookup_imports_the_module_that_registers_it(things) -> None:
    things, module = things
    assert things.get("beta")() == "built-in beta"
    assert module in sys.modules
    assert things.get("alpha")() == "built-in alpha"
    with pytest.raises(RegistryError, match=r"unknown thing 'gamma'; known things: alpha, beta"):
        things.get("gamma")


def test_a_users_entry_under_a_builtin_name_is_refused_or_replaces_it(things) -> None:
    things, _ = things
    with pytest.raises(ValueError, match="A thing named 'alpha' is already registered"):
        things.register("alpha")(lambda: "mine")
    assert things.get("alpha")() == "built-in alpha"
    things.register("beta", overwrite=True)(lambda: "mine")
    assert things.get("beta")() == "mine"


def test_a_builtin_entry_is_told_from_a_users_one(things) -> None:
    things, module = things
    assert things.is_builtin("alpha") and module not in sys.modules  # not imported to tell
    assert things.get("alpha")() == "built-in alpha" and things.is_builtin("alpha")
    things.register("beta", overwrite=True)(lambda: "mine")
    things.register("gamma")(lambda: "mine")
    assert not things.is_builtin("beta") and not things.is_builtin("gamma")
    assert not things.is_builtin("delta")


def test_only_the_builtin_digits_ship_with_a_package() -> None:
    from dcl_search.datasets._registry import packaged_dataset

    assert packaged_dataset("digits")
    assert not any(packaged_dataset(name) for name in ("cifar100", "imagefolder", "nope"))


def test_a_builtin_module_that_does_not_register_its_name_is_named(things) -> None:
    _, module = things
    stray = Registry("thing", builtin={module: ("gamma",)})
    with pytest.raises(
        RegistryError, match=f"{module} did not register the built-in thing 'gamma'"
    ):
        stray.get("gamma")


def test_every_shipped_module_registers_exactly_the_names_declared_for_it() -> None:
    """The declared names (known without imports) and the registrations (what trains) agree."""
    code = """
import json
from dcl_search.datasets import DATASETS
from dcl_search.gates import GATES
from dcl_search.models import MODELS

found = {}
for registry in (MODELS, GATES, DATASETS):
    declared = dict(registry._builtin)
    for name in declared:
        registry.get(name)
    registered = {
        name: registry.get(name).__module__
        for name in registry.names()
        if registry.get(name).__module__.startswith("dcl_search.")
    }
    found[registry.kind] = [declared, registered]
print(json.dumps(found))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert set(found) == {"model", "gate", "dataset"}
    for kind, (declared, registered) in found.items():
        assert declared == registered, kind
    assert len(found["model"][0]) == 17 and len(found["gate"][0]) == 5
    assert found["dataset"][0]["cifar100"] == "dcl_search.datasets._cifar"

"""Strict parsing of YAML/dict configs into frozen dataclasses.

Parsed once at the boundary: an unknown key, a wrong type or a bad value is an error naming
the file, the key and what is allowed, never a silent default (torchdistill's weakness).
Dataclasses check their values in ``__post_init__`` by raising ``ValueError`` (or the error
class given) with a message that starts with the field name; the key path is prefixed here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dcl_search._errors import DCLSearchError

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]  # where trainers/ and search_spaces/ ship


def load_yaml(path: str | Path, error: type[DCLSearchError]) -> dict[str, Any]:
    """The mapping in a YAML file; a missing file or bad YAML raises ``error`` naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML ({str(problem).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of keys to values at the top level")
    return data


class _Parser:
    def __init__(self, source: str, error: type[DCLSearchError]) -> None:
        self.source, self.error = source, error

    def fail(self, message: str) -> DCLSearchError:
        return self.error(f"{self.source}: {message}")

    def mapping(self, cls: type[T], data: Any, prefix: str) -> T:
        if not isinstance(data, dict):
            raise self.fail(
                f"{prefix.rstrip('.') or 'the top level'} must be a mapping, got {data!r}"
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise self.fail(
                f"unknown key {prefix + str(unknown[0])!r}; allowed keys: {', '.join(names)}"
            )
        hints = typing.get_type_hints(cls)
        values = {k: self.value(v, hints[k], prefix + k) for k, v in data.items()}
        try:
            return cls(**values)
        except (TypeError, ValueError) as problem:  # the error classes derive from ValueError
            raise self.fail(f"{prefix}{problem}") from None

    def value(self, value: Any, kind: Any, key: str) -> Any:
        origin = typing.get_origin(kind)
        if dataclasses.is_dataclass(kind):
            return self.mapping(kind, value, key + ".")
        if origin is typing.Literal:
            allowed = typing.get_args(kind)
            if isinstance(value, bool) and ("on" if value else "off") in allowed:
                value = "on" if value else "off"  # YAML 1.1 reads on/off as booleans
            if value not in allowed:
                raise self.fail(
                    f"{key} is {value!r}; allowed values: {', '.join(map(str, allowed))}"
                )
            return value
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in typing.get_args(kind):
                return None
            return self.value(
                value, next(k for k in typing.get_args(kind) if k is not type(None)), key
            )
        if origin is tuple:
            if not isinstance(value, (list, tuple)):
                raise self.fail(f"{key} must be a list, got {value!r}")
            item = typing.get_args(kind)[0]
            return tuple(self.value(v, item, f"{key}[{i}]") for i, v in enumerate(value))
        return self.scalar(value, kind, key)

    def scalar(self, value: Any, kind: type, key: str) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(f"{key} must be {kind.__name__}, got {value!r}")
        if kind is float and isinstance(value, (int, float)):
            return float(value)
        if kind is float and isinstance(value, str):
            try:  # YAML 1.1 reads "5e-4" as a string
                return float(value)
            except ValueError:
                pass
        if isinstance(value, kind):
            return value
        raise self.fail(f"{key} must be {kind.__name__}, got {value!r}")


def from_mapping(cls: type[T], data: Any, source: str, error: type[DCLSearchError]) -> T:
    """An instance of dataclass ``cls`` from ``data``; problems raise ``error`` naming ``source``."""
    return _Parser(source, error).mapping(cls, data, "")


def find_named_yaml(
    spec: str, folder: str, registered: dict[str, Path] | None = None
) -> tuple[Path | None, list[str]]:
    """The YAML file ``spec`` names: an existing path, else ``./<folder>/<spec>.yaml``, a registered
    entry, then the repository's ``<folder>/<spec>.yaml``. Also returns every known name, for
    the caller's error message when nothing is found."""
    path = Path(spec)
    if path.is_file():
        return path, []
    folders = [Path.cwd() / folder, REPO_ROOT / folder]
    registered = registered or {}
    candidates = [folders[0] / f"{spec}.yaml", registered.get(spec), folders[1] / f"{spec}.yaml"]
    found = next((c for c in candidates if c is not None and Path(c).is_file()), None)
    known = set(registered) | {p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")}
    return (Path(found) if found else None), sorted(known)

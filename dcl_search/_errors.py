"""Exceptions of dcl-search.

Every mistake a user can make raises a subclass of :class:`DCLSearchError`; the CLI turns
them into a one-line message and a non-zero exit, so their messages must stand alone:
name the file, the field, the bad value and what is allowed.
"""

from __future__ import annotations


class DCLSearchError(Exception):
    """Base class of every error dcl-search raises on purpose."""


class RegistryError(DCLSearchError, KeyError):
    """An unknown name was looked up in a registry."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class GraphError(DCLSearchError, ValueError):
    """A knowledge-transfer graph (or its JSON file) is invalid."""


class RecipeError(DCLSearchError, ValueError):
    """A training recipe (YAML file or override) is invalid."""


class DatasetError(DCLSearchError, ValueError):
    """A dataset is missing, malformed, or asked for with bad options."""


class TrainingError(DCLSearchError, RuntimeError):
    """Training cannot go on (non-finite loss, mismatched checkpoint, ...)."""


class SearchSpaceError(DCLSearchError, ValueError):
    """A search space (YAML file) is invalid."""

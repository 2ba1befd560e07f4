"""The command line loads its heavy libraries only in the commands that use them: ``--help``
answers at once, and reading a search's results imports no Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_the_parser_and_help_load_no_torch_ray_or_pandas() -> None:
    heavy = ("torch", "ray", "pandas", "networkx", "optuna", "matplotlib")
    assert _loaded_after("import dcl_search.cli", heavy) == []
    assert (
        _loaded_after(
            "from dcl_search.cli import build_parser; build_parser().format_help()", heavy
        )
        == []
    )


@pytest.mark.parametrize(
    "module", ["dcl_search.search", "dcl_search.search._settings", "dcl_search.search._results"]
)
def test_the_search_settings_and_results_import_nothing_of_ray(module: str) -> None:
    assert _loaded_after(f"import {module}", ("ray",)) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "dml:2"],
        ["search"],
        ["export", "results/run"],
        ["reeval", "results/run"],
        ["transfer", "graph.json"],
        ["show", "dml:2"],
    ],
)
def test_every_command_reaches_its_handler_even_with_a_positional_named_run(argv) -> None:
    from dcl_search.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.handler.__module__.startswith("dcl_search.cli._")
    assert args.handler.__name__.startswith("run")

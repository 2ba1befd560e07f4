"""The command line loads its heavy libraries only in the commands that use them: ``--help``
answers at once, reading a search's results imports no Ray, and a search's driver no torch
(its trials import it in Ray's workers)."""

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


def test_what_a_search_driver_checks_and_runs_imports_no_torch() -> None:
    statement = (
        "from dcl_search.datasets import DATASETS; from dcl_search.gates import GATES; "
        "from dcl_search.models import MODELS; "
        "assert 'resnet110' in MODELS and 'correct' in GATES and 'cifar100' in DATASETS; "
        "from dcl_search.graphs import preset_graph; preset_graph('dml:resnet32,resnet110'); "
        "from dcl_search.search import load_search_space; "
        "[load_search_space(name) for name in ('paper', 'demo')]; "
        "from dcl_search.search._driver import _import_tune; _import_tune(); "
        "from dcl_search.search._tensorboard import TensorBoardLogger; TensorBoardLogger()"
    )
    assert _loaded_after(statement, ("torch", "torchvision")) == []


def test_tunes_copy_of_the_tensorboard_logger_loads_without_torch() -> None:
    # Tune pickles its callbacks with the search, and --resume loads them
    import pickle

    from dcl_search.search._tensorboard import TensorBoardLogger

    data = pickle.dumps(TensorBoardLogger())
    statement = (
        f"import pickle; assert type(pickle.loads({data!r})).__name__ == 'TensorBoardLogger'"
    )
    assert _loaded_after(statement, ("torch",)) == []


def test_a_search_space_with_collaborative_options_checks_them_on_torch_models() -> None:
    """Its models' layouts decide which options apply (built on the meta device)."""
    statement = "from dcl_search.search import load_search_space; load_search_space('collab_demo')"
    assert _loaded_after(statement, ("torch",)) == ["torch"]


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

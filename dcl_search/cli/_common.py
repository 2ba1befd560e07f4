"""Pieces shared by the commands: recipe lookup, dataset options, result tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dcl_search._config import find_named_yaml
from dcl_search._errors import RecipeError

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from dcl_search.training import Accuracy, Recipe

# The command modules import torch, pandas and Ray only inside the commands that use them,
# so that ``--help`` answers at once.


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``. argparse names the option in its message and
    stops before anything runs (a search would otherwise fail on ``--seeds 0`` only at its end)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"is {value}, but must be >= {minimum}")
        return value

    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def share(*, zero_allowed: bool) -> Callable[[str], float]:
    """An argparse type: a finite number > 0 (or >= 0), e.g. CPUs or GPUs per trial."""

    def parse(text: str) -> float:
        value = _number(text)
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            raise argparse.ArgumentTypeError(
                f"is {text}, but must be a number {'>=' if zero_allowed else '>'} 0"
            )
        return value

    return parse


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (a share of a dataset)."""
    value = _number(text)
    if not 0 < value < 1:  # NaN included
        raise argparse.ArgumentTypeError(
            f"is {text}, but must be a number strictly between 0 and 1"
        )
    return value


def add_status_every(parser: argparse.ArgumentParser, noun: str) -> None:
    parser.add_argument(
        "--status-every",
        type=share(zero_allowed=True),
        default=60.0,
        metavar="SECONDS",
        help=f"after this long without a progress line, print the running {noun}s' epochs and "
        "accuracies (default 60; 0: never)",
    )


def find_recipe(spec: str) -> Path:
    """A recipe file from a path, or a name of a file under ``trainers/`` (``paper``, ``demo``)."""
    path, known = find_named_yaml(spec, "trainers")
    if path is None:
        raise RecipeError(
            f"{spec}: no such recipe file; recipes under trainers/: {', '.join(known) or 'none'}"
        )
    return path


def default_recipe_name(dataset: str) -> str:
    return "demo" if dataset == "digits" else "paper"


def load_recipe_option(spec: str | None, dataset: str, epochs: int | None) -> tuple[Recipe, Path]:
    from dcl_search.training import load_recipe

    path = find_recipe(spec or default_recipe_name(dataset))
    return load_recipe(path).with_epochs(epochs), path


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", default="digits", help="registered dataset name (default: digits, embedded)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the dataset (default: $DCL_SEARCH_DATA or ./data)",
    )
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.1,
        help="share of the training set held out for validation (default 0.1)",
    )
    parser.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of training labels replaced uniformly at random (default 0)",
    )
    parser.add_argument(
        "--label-noise-mode",
        choices=("epoch", "fixed"),
        default="epoch",
        help="draw noisy labels anew every epoch (default) or once",
    )


def accuracy_table(graph: nx.DiGraph, val: Accuracy, test: Accuracy) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for node in sorted(graph.nodes):
        attrs = graph.nodes[node]
        role = "target" if node == 0 else ("frozen" if attrs.get("frozen") else "trained")
        rows.append(
            {
                "node": str(node),
                "model": attrs["model"],
                "role": role,
                "val acc %": 100 * val.nodes[node],
                "test acc %": 100 * test.nodes[node],
            }
        )
    rows.append(
        {
            "node": "ensemble",
            "model": "",
            "role": "mean softmax",
            "val acc %": 100 * val.ensemble,
            "test acc %": 100 * test.ensemble,
        }
    )
    return pd.DataFrame(rows).set_index("node")

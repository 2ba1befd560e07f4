"""How well early rungs predict the last epoch: hand-computed values on hand-built curves."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from dcl_search.search import SearchSettings, load_search_space
from dcl_search.search._fidelity import describe_fidelity, fidelity_epochs, rung_fidelity
from dcl_search.training import Recipe

NAN = float("nan")


def _curves(rows: dict[str, list[float]]) -> pd.DataFrame:
    """Graph key → accuracies at epochs 1, 2, 3, … (NaN: never reached)."""
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = range(1, frame.shape[1] + 1)
    return frame


def test_spearman_and_regret_are_computed_over_the_graphs_that_reached_the_last_epoch() -> None:
    curves = _curves(
        {
            "a": [0.1, 0.5, 0.5],
            "b": [0.2, 0.5, 0.4],
            "c": [0.3, 0.6, 0.3],
            "d": [0.4, 0.7, 0.2],
            "e": [0.5, 0.7, 0.1],
            "f": [0.9, NAN, NAN],  # stopped after epoch 1: no last accuracy
        }
    )
    table = rung_fidelity(curves, [1, 2], last=3)
    assert table["epoch"].tolist() == [1, 2]
    assert table["reached"].tolist() == [6, 5]
    assert table["graphs"].tolist() == [5, 5]
    # epoch 1 ranks a..e in the exact reverse of epoch 3; f, the best at epoch 1, never counts
    assert table["spearman"][0] == pytest.approx(-1.0)
    assert table["regret"][0] == pytest.approx(0.5 - 0.1)
    # epoch 2 ties a, b and d, e: ranks 1.5 1.5 3 4.5 4.5 against 5 4 3 2 1
    assert table["spearman"][1] == pytest.approx(-9 / (3 * math.sqrt(10)))
    assert table["regret"][1] == pytest.approx(0.5 - (0.2 + 0.1) / 2)  # d and e tie at the top


def test_too_few_graphs_or_no_spread_give_no_correlation() -> None:
    four = _curves({key: [0.1 * i, 0.2 * i] for i, key in enumerate("abcd", 1)})
    table = rung_fidelity(four, [1], last=2)
    assert table["graphs"].tolist() == [4] and math.isnan(table["spearman"][0])
    assert table["regret"][0] == pytest.approx(0.0)
    assert describe_fidelity(table, last=2) == (
        "early rungs against epoch 2: 4 graphs reached it, 5 are needed to measure how well the "
        "rungs predict it; a search with --grace-period 2 trains every graph to the end"
    )
    assert describe_fidelity(table, last=2, where=Path("r/export/rungs.csv")).endswith("the end")
    flat = _curves({key: [0.5, 0.1 * i, 0.3 * i] for i, key in enumerate("abcde", 1)})
    table = rung_fidelity(flat, [1, 2], last=3)
    assert math.isnan(table["spearman"][0]) and table["spearman"][1] == pytest.approx(1.0)
    assert describe_fidelity(table, last=3) == (
        "early rungs against epoch 3 (5 graphs reached it): Spearman ρ at epoch 1: -, 2: +1.00"
    )


def test_a_rung_no_graph_reached_is_an_empty_row() -> None:
    table = rung_fidelity(_curves({"a": [0.1], "b": [0.2]}), [1, 4], last=8)
    assert table.to_dict("records")[1]["reached"] == 0
    assert table["graphs"].tolist() == [0, 0]
    assert math.isnan(table["regret"][1])
    assert describe_fidelity(rung_fidelity(_curves({"a": [0.1]}), [], last=1), last=1) is None


def test_the_summary_line_names_the_survivors_only_when_asha_stopped_some() -> None:
    rows = {key: [0.1 * i, 0.5 - 0.1 * i] for i, key in enumerate("abcde", 1)}
    stopped = _curves({**rows, "f": [0.05, NAN]})
    line = describe_fidelity(rung_fidelity(stopped, [1], last=2), last=2)
    assert line == (
        "early rungs against epoch 2 (5 graphs reached it, ASHA's survivors of 6): "
        "Spearman ρ at epoch 1: -1.00"
    )
    line = describe_fidelity(rung_fidelity(_curves(rows), [1], last=2), last=2)
    assert line == "early rungs against epoch 2 (5 graphs reached it): Spearman ρ at epoch 1: -1.00"
    line = describe_fidelity(rung_fidelity(_curves(rows), [1], 2), 2, Path("r/export/rungs.csv"))
    assert line.endswith("epoch 1: -1.00; per epoch in r/export/rungs.csv")


@pytest.mark.parametrize(
    ("grace", "factor", "epochs", "expected"),
    [
        (1, 2, 6, [1, 2, 4]),
        (3, 2, 20, [1, 2, 3, 4, 6, 8, 12, 16]),  # the rungs, and those of grace period 1
        (20, 2, 20, [1, 2, 4, 8, 16]),  # a search that stops nothing still measures them
        (1, 4, 200, [1, 4, 16, 64]),
    ],
)
def test_fidelity_is_measured_at_the_rungs_and_at_the_powers_of_the_factor(
    grace: int, factor: int, epochs: int, expected: list[int]
) -> None:
    settings = SearchSettings(
        name="run",
        storage="/tmp",
        space=load_search_space("demo"),
        recipe=Recipe(epochs=epochs),
        grace_period=grace,
        reduction_factor=factor,
    )
    assert fidelity_epochs(settings) == expected

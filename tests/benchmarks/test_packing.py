"""benchmarks/packing.py without running a search: its arithmetic."""

from __future__ import annotations

import packing
import pytest


def _row(trained: int, seconds: float, started: float, reported: float) -> dict:
    return {
        "trained_epochs": trained,
        "seconds": seconds,
        "started_at": started,
        "reported_at": reported,
    }


def test_throughput_counts_only_trained_epochs() -> None:
    trials = [
        # trained both epochs
        [_row(1, 10.0, 100.0, 112.0), _row(2, 12.0, 100.0, 125.0)],
        # an already trained graph, replayed from the store: nothing trained
        [_row(0, 10.0, 105.0, 106.0), _row(0, 12.0, 105.0, 107.0)],
        # restored: epoch 2 replayed, epochs 1 and 3 trained
        [_row(1, 20.0, 110.0, 131.0), _row(1, 5.0, 110.0, 132.0), _row(2, 30.0, 110.0, 170.0)],
    ]

    result = packing.throughput(trials, wall_seconds=200.0)

    assert packing.trained_epoch_seconds(trials) == [10.0, 12.0, 20.0, 30.0]
    assert result["trials_reported"] == 3
    assert result["epochs_reported"] == 7
    assert result["trained_epochs"] == 4
    assert result["running_seconds"] == pytest.approx(70.0)  # first start 100, last report 170
    assert result["epochs_per_hour_wall"] == pytest.approx(3600 * 4 / 200)  # 72
    assert result["epochs_per_hour_running"] == pytest.approx(3600 * 4 / 70)
    assert result["median_epoch_seconds"] == pytest.approx(16.0)


def test_ratios_and_recommendation() -> None:
    results = [
        {"packing": 1, "gpus_per_trial": 1.0, "cpus_per_trial": 16,
         "epochs_per_hour_wall": 100.0, "epochs_per_hour_running": 200.0},
        {"packing": 2, "gpus_per_trial": 0.5, "cpus_per_trial": 8,
         "epochs_per_hour_wall": 150.0, "epochs_per_hour_running": 500.0},
        {"packing": 4, "gpus_per_trial": 0.25, "cpus_per_trial": 4,
         "epochs_per_hour_wall": 180.0, "epochs_per_hour_running": 400.0},
    ]  # fmt: skip

    packing.add_ratios(results)

    assert [r["ratio_running"] for r in results] == pytest.approx([1.0, 2.5, 2.0])
    assert [r["ratio_wall"] for r in results] == pytest.approx([1.0, 1.5, 1.8])
    cuda = packing.recommend(results, "cuda")
    assert (cuda["flag"], cuda["value"], cuda["packing"]) == ("--gpus-per-trial", 0.5, 2)
    cpu = packing.recommend(results, "cpu")
    assert (cpu["flag"], cpu["value"]) == ("--cpus-per-trial", 8)


def test_resources_share_the_device_and_the_cores() -> None:
    assert packing.resources("cuda", 8, 16) == {
        "cpus_per_trial": 2,
        "gpus_per_trial": 0.125,
        "concurrency": 8,
    }
    assert packing.resources("cpu", 4, 2) == {
        "cpus_per_trial": 1,
        "gpus_per_trial": 0.0,
        "concurrency": 4,
    }


@pytest.mark.parametrize("mode", ["off", "reduce-overhead"])
def test_the_compiled_searches_train_the_paper_recipe_with_only_compile_changed(
    tmp_path, mode
) -> None:
    from dcl_search.training import load_recipe

    written = load_recipe(packing.write_recipe(tmp_path / "recipe.yaml", mode))
    paper = load_recipe(packing.RECIPE)
    assert written.compile == mode
    assert written.to_dict() == {**paper.to_dict(), "compile": mode}


def test_the_graphed_searches_train_the_paper_recipe_with_only_cuda_graph_changed(
    tmp_path,
) -> None:
    from dcl_search.training import load_recipe

    written = load_recipe(packing.write_recipe(tmp_path / "recipe.yaml", "off", "on"))
    paper = load_recipe(packing.RECIPE)
    assert written.to_dict() == {**paper.to_dict(), "cuda_graph": "on"}


def test_graphed_trials_count_those_whose_steps_replayed_a_graph() -> None:
    trials = [
        [{"graphed_steps": 0}, {"graphed_steps": 40}],
        [{"graphed_steps": 0}, {"graphed_steps": 0}],  # its capture failed: trained eagerly
        [{}],  # cuda_graph: off reports no count
    ]
    assert packing.graphed_trials(trials) == 1

"""benchmarks/packing.py without running a search: its synthetic CIFAR-100 and its arithmetic."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from dcl_search.datasets import load_dataset, stratified_split


@pytest.fixture(scope="module")
def packing() -> ModuleType:
    import packing

    return packing


def test_synthetic_cifar100_loads_with_the_project_loader(packing, tmp_path: Path) -> None:
    data_dir = packing.write_synthetic_cifar100(tmp_path, train_images=500, test_images=120)
    folder = data_dir / "cifar-100-python"
    with (folder / "train").open("rb") as file:
        train = pickle.load(file, encoding="bytes")
    with (folder / "test").open("rb") as file:
        test = pickle.load(file, encoding="bytes")
    with (folder / "meta").open("rb") as file:
        meta = pickle.load(file, encoding="bytes")
    assert len(meta[b"fine_label_names"]) == 100

    splits = load_dataset("cifar100", data_dir, val_fraction=0.1, split_seed=0)

    assert splits.num_classes == 100
    assert len(splits.train) + len(splits.val) == 500
    assert len(splits.test) == 120
    written = torch.from_numpy(train[b"data"].reshape(-1, 3, 32, 32))
    labels = torch.tensor(train[b"fine_labels"])
    keep, held_out = stratified_split(labels, 0.1, 0)
    assert torch.equal(splits.train.images, written[keep])
    assert torch.equal(splits.val.images, written[held_out])
    assert torch.equal(splits.train.labels, labels[keep])
    assert torch.equal(splits.test.images, torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32)))
    assert splits.test.labels.tolist() == test[b"fine_labels"]


def test_synthetic_cifar100_is_seeded(packing, tmp_path: Path) -> None:
    first = packing.write_synthetic_cifar100(tmp_path / "a", train_images=50, test_images=10)
    second = packing.write_synthetic_cifar100(tmp_path / "b", train_images=50, test_images=10)
    for name in ("train", "test"):
        a = pickle.loads((first / "cifar-100-python" / name).read_bytes(), encoding="bytes")
        b = pickle.loads((second / "cifar-100-python" / name).read_bytes(), encoding="bytes")
        assert np.array_equal(a[b"data"], b[b"data"])
        assert a[b"fine_labels"] == b[b"fine_labels"]


def _row(trained: int, seconds: float, started: float, reported: float) -> dict:
    return {
        "trained_epochs": trained,
        "seconds": seconds,
        "started_at": started,
        "reported_at": reported,
    }


def test_throughput_counts_only_trained_epochs(packing) -> None:
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


def test_ratios_and_recommendation(packing) -> None:
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


def test_resources_share_the_device_and_the_cores(packing) -> None:
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

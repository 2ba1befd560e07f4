"""benchmarks/_synthetic.py: a CIFAR-100 in torchvision's format that the project's loader reads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from _synthetic import write_synthetic_cifar100

from dcl_search.datasets import load_dataset, stratified_split


def test_synthetic_cifar100_loads_with_the_project_loader(tmp_path: Path) -> None:
    data_dir = write_synthetic_cifar100(tmp_path, train_images=500, test_images=120)
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


def test_synthetic_cifar100_is_seeded(tmp_path: Path) -> None:
    first = write_synthetic_cifar100(tmp_path / "a", train_images=50, test_images=10)
    second = write_synthetic_cifar100(tmp_path / "b", train_images=50, test_images=10)
    for name in ("train", "test"):
        a = pickle.loads((first / "cifar-100-python" / name).read_bytes(), encoding="bytes")
        b = pickle.loads((second / "cifar-100-python" / name).read_bytes(), encoding="bytes")
        assert np.array_equal(a[b"data"], b[b"data"])
        assert a[b"fine_labels"] == b[b"fine_labels"]

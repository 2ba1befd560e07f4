"""stratified_split: per-class hold-out counts, determinism, partition."""

from __future__ import annotations

import pytest
import torch

from dcl_search._errors import DatasetError
from dcl_search.datasets import stratified_split


def make_labels() -> torch.Tensor:
    # Classes of 50, 30, 20, 7, 2 and 1 samples, interleaved.
    counts = {0: 50, 1: 30, 2: 20, 3: 7, 4: 2, 5: 1}
    labels = torch.cat([torch.full((n,), c) for c, n in counts.items()])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))]


def test_per_class_counts_and_partition() -> None:
    labels = make_labels()
    keep, held = stratified_split(labels, 0.2, seed=0)
    assert keep.dtype == held.dtype == torch.int64
    held_counts = torch.bincount(labels[held], minlength=6).tolist()
    # round(0.2 * n), at least one for classes of >= 2 samples, none for a singleton.
    assert held_counts == [10, 6, 4, 1, 1, 0]
    assert torch.equal(keep, keep.sort().values) and torch.equal(held, held.sort().values)
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(labels)))


def test_every_class_keeps_a_sample() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1])
    keep, held = stratified_split(labels, 0.9, seed=1)
    assert torch.bincount(labels[keep]).tolist() == [1, 1]
    assert torch.bincount(labels[held]).tolist() == [1, 2]


def test_deterministic_per_seed_and_seeds_differ() -> None:
    labels = make_labels()
    first = stratified_split(labels, 0.3, seed=5)
    again = stratified_split(labels.clone(), 0.3, seed=5)
    other = stratified_split(labels, 0.3, seed=6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], other[1])
    assert len(other[1]) == len(first[1])


def test_zero_fraction_holds_nothing_out() -> None:
    labels = make_labels()
    keep, held = stratified_split(labels, 0.0, seed=0)
    assert held.numel() == 0 and keep.tolist() == list(range(len(labels)))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), True])
def test_bad_fraction(fraction: float) -> None:
    with pytest.raises(DatasetError, match="fraction"):
        stratified_split(torch.tensor([0, 1, 0, 1]), fraction, seed=0)


def test_bad_labels() -> None:
    with pytest.raises(DatasetError, match="1-D"):
        stratified_split(torch.zeros(2, 2, dtype=torch.int64), 0.5, seed=0)
    with pytest.raises(DatasetError, match="integer"):
        stratified_split(torch.zeros(4), 0.5, seed=0)

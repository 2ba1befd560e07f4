"""uniform_label_noise: the exact number of re-drawn labels, uniform over all classes."""

from __future__ import annotations

import pytest
import torch

from dcl_search._errors import DatasetError
from dcl_search.datasets import uniform_label_noise


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize(("n", "fraction"), [(1000, 0.4), (999, 0.25), (7, 0.5), (50, 1.0)])
def test_exactly_round_fraction_n_labels_are_redrawn(n: int, fraction: float) -> None:
    # With two classes and the same generator state, running on all-0 and all-1 labels redraws
    # the same positions with the same new labels; every redrawn position differs from one of
    # the two inputs, so the union of changed positions is exactly the redrawn set.
    zeros = torch.zeros(n, dtype=torch.int64)
    from_zeros = uniform_label_noise(zeros, fraction, 2, gen(3))
    from_ones = uniform_label_noise(torch.ones(n, dtype=torch.int64), fraction, 2, gen(3))
    redrawn = (from_zeros != 0) | (from_ones != 1)
    assert int(redrawn.sum()) == round(fraction * n)
    assert torch.equal(from_zeros[redrawn], from_ones[redrawn])
    assert torch.equal(zeros, torch.zeros(n, dtype=torch.int64))  # input left untouched


def test_share_of_wrong_labels_and_uniform_new_labels() -> None:
    n, classes, fraction = 100_000, 10, 0.5
    labels = torch.arange(n) % classes
    noisy = uniform_label_noise(labels, fraction, classes, gen(0))
    wrong = (noisy != labels).float().mean().item()
    assert wrong == pytest.approx(fraction * (1 - 1 / classes), abs=0.01)
    assert noisy.dtype == labels.dtype and noisy.shape == labels.shape
    assert int(noisy.min()) >= 0 and int(noisy.max()) < classes
    counts = torch.bincount(noisy, minlength=classes).float() / n
    assert torch.allclose(counts, torch.full((classes,), 0.1), atol=0.01)


def test_fraction_zero_and_determinism() -> None:
    labels = torch.arange(200) % 7
    assert torch.equal(uniform_label_noise(labels, 0.0, 7, gen(1)), labels)
    first = uniform_label_noise(labels, 0.3, 7, gen(42))
    assert torch.equal(first, uniform_label_noise(labels, 0.3, 7, gen(42)))
    assert not torch.equal(first, uniform_label_noise(labels, 0.3, 7, gen(43)))


@pytest.mark.parametrize("fraction", [-0.01, 1.01, float("nan"), "0.2"])
def test_bad_fraction_names_the_value(fraction: object) -> None:
    with pytest.raises(DatasetError, match=f"got {fraction!r}"):
        uniform_label_noise(torch.zeros(4, dtype=torch.int64), fraction, 2, gen(0))


def test_bad_num_classes() -> None:
    with pytest.raises(DatasetError, match="num_classes"):
        uniform_label_noise(torch.zeros(4, dtype=torch.int64), 0.5, 0, gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_generator_device() -> None:
    labels = (torch.arange(1000) % 10).cuda()
    noisy = uniform_label_noise(labels, 0.4, 10, gen(0, "cuda"))
    assert noisy.device == labels.device
    assert torch.equal(noisy, uniform_label_noise(labels, 0.4, 10, gen(0, "cuda")))
    cpu_labels = labels.cpu()
    redrawn = uniform_label_noise(cpu_labels, 0.4, 10, gen(0, "cuda"))
    assert redrawn.device.type == "cpu" and torch.equal(redrawn, noisy.cpu())

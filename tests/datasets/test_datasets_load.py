"""load_dataset: data-dir resolution, validation split, statistics; the bundled digits set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcl_search._errors import DatasetError, RegistryError
from dcl_search.datasets import (
    DATASETS,
    DatasetSplits,
    ImageSet,
    RawDataset,
    load_dataset,
    register_dataset,
)


@pytest.fixture
def fake_dataset(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Register 'fake' for this test only; returns the data dirs its loader was called with."""
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    calls: list[Path] = []

    @register_dataset("fake")
    def load_fake(data_dir: Path) -> RawDataset:
        calls.append(data_dir)
        rng = np.random.default_rng(0)
        images = torch.from_numpy(rng.integers(0, 256, (40, 2, 3, 5), dtype=np.uint8))
        labels = torch.arange(40) % 4
        test = ImageSet(images[:6].clone(), labels[:6].clone())
        return RawDataset(ImageSet(images, labels), test, num_classes=4)

    return calls


def test_splits_and_statistics(fake_dataset: list[Path], tmp_path: Path) -> None:
    splits = load_dataset("fake", tmp_path, val_fraction=0.2, split_seed=1)
    assert isinstance(splits, DatasetSplits) and fake_dataset == [tmp_path]
    assert (splits.name, splits.num_classes, splits.in_channels) == ("fake", 4, 2)
    assert splits.image_size == (3, 5)
    assert len(splits.train) == 32 and len(splits.val) == 8 and len(splits.test) == 6
    assert torch.bincount(splits.val.labels).tolist() == [2, 2, 2, 2]
    # Hand computation over the train split only, scaled to [0, 1], population std.
    pixels = splits.train.images.double().div(255).permute(1, 0, 2, 3).reshape(2, -1)
    assert splits.mean == pytest.approx(pixels.mean(dim=1).tolist(), abs=1e-12)
    assert splits.std == pytest.approx(pixels.std(dim=1, correction=0).tolist(), abs=1e-12)
    everything = torch.cat([splits.train.images, splits.val.images]).double().div(255)
    assert splits.mean[0] != pytest.approx(everything[:, 0].mean().item(), abs=1e-9)


def test_val_split_follows_the_seed(fake_dataset: list[Path], tmp_path: Path) -> None:
    a = load_dataset("fake", tmp_path, split_seed=1)
    b = load_dataset("fake", tmp_path, split_seed=1)
    c = load_dataset("fake", tmp_path, split_seed=2)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    assert torch.equal(a.test.images, c.test.images)


def test_data_dir_default(
    fake_dataset: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCL_SEARCH_DATA", str(tmp_path / "env"))
    load_dataset("fake")
    monkeypatch.delenv("DCL_SEARCH_DATA")
    load_dataset("fake")
    load_dataset("fake", str(tmp_path))
    assert fake_dataset == [tmp_path / "env", Path("data"), tmp_path]


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 2.5, float("nan"), None])
def test_bad_val_fraction_names_the_value(fake_dataset: list[Path], fraction: object) -> None:
    with pytest.raises(DatasetError, match=f"val_fraction .*got {fraction!r}"):
        load_dataset("fake", val_fraction=fraction)
    assert fake_dataset == []


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(RegistryError, match=r"unknown dataset 'nope'.*cifar10.*digits.*svhn"):
        load_dataset("nope")


def test_loader_returning_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))
    register_dataset("broken")(lambda data_dir: {"train": None})
    with pytest.raises(DatasetError, match="'broken' returned dict"):
        load_dataset("broken")


def test_image_set_validation() -> None:
    with pytest.raises(DatasetError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(DatasetError, match="int64"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(DatasetError, match="2 images but 3 labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    channels_last = torch.zeros(2, 4, 4, 1, dtype=torch.uint8).permute(0, 3, 1, 2)
    assert ImageSet(channels_last, torch.zeros(2, dtype=torch.int64)).images.is_contiguous()
    good = ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]))
    with pytest.raises(DatasetError, match=r"0\.\.2, found 0\.\.3"):
        RawDataset(good, good, num_classes=3)


def test_digits() -> None:
    a = load_dataset("digits", split_seed=0)
    b = load_dataset("digits", split_seed=7)
    assert a.num_classes == 10 and a.in_channels == 1 and a.image_size == (8, 8)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert a.train.images.shape[1:] == (1, 8, 8) and a.train.images.dtype == torch.uint8
    # The test split never depends on the run's seed; the validation split does.
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.val.images, b.val.images)
    test_counts = torch.bincount(a.test.labels, minlength=10)
    all_counts = torch.bincount(torch.cat([a.train.labels, a.val.labels, a.test.labels]))
    assert test_counts.tolist() == [round(0.2 * n) for n in all_counts.tolist()]
    pixels = torch.cat([a.train.images, a.val.images, a.test.images])
    assert int(pixels.min()) == 0 and int(pixels.max()) == 255
    # 0..16 scaled by 255/16 and rounded half up: 8 -> 128, 1 -> 16.
    assert set(pixels.unique().tolist()) <= {int(v * 255 / 16 + 0.5) for v in range(17)}
    assert 128 in set(pixels.unique().tolist())


def test_digits_read_from_the_bundled_file_equal_scikit_learns_loader() -> None:
    from sklearn.datasets import load_digits

    from dcl_search.datasets._digits import _bundled_digits

    images, target = _bundled_digits()
    reference = load_digits()
    assert np.array_equal(images, reference.images) and images.dtype == reference.images.dtype
    assert np.array_equal(target, reference.target) and target.dtype == np.int64

"""Image-set containers, the dataset registry, :func:`load_dataset` and helpers for loaders."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dcl_search._errors import DatasetError
from dcl_search.datasets._registry import (  # noqa: F401 (the loaders import them from here)
    DATA_ENV_VAR,
    DATASETS,
    register_dataset,
    resolve_data_dir,
)
from dcl_search.datasets._split import stratified_split


# eq=False: the generated __eq__ would compare tensors element-wise and fail on bool().
@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and their labels, both on the CPU.

    ``images`` is uint8 ``[N, C, H, W]`` (made contiguous if it is not), ``labels`` int64 ``[N]``.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not _is_tensor(images, torch.uint8, 4):
            raise DatasetError(
                f"ImageSet.images must be a uint8 CPU tensor of shape [N, C, H, W], "
                f"got {_describe(images)}"
            )
        if not _is_tensor(labels, torch.int64, 1):
            raise DatasetError(
                f"ImageSet.labels must be an int64 CPU tensor of shape [N], got {_describe(labels)}"
            )
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"ImageSet has {images.shape[0]} images but {labels.shape[0]} labels"
            )
        if not images.is_contiguous():
            object.__setattr__(self, "images", images.contiguous())
        if not labels.is_contiguous():
            object.__setattr__(self, "labels", labels.contiguous())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, indices: torch.Tensor) -> ImageSet:
        """The samples at ``indices`` (a copy, in that order)."""
        return ImageSet(self.images[indices], self.labels[indices])


@dataclass(frozen=True, eq=False)
class RawDataset:
    """What a registered loader returns: the official train and test sets."""

    train: ImageSet
    test: ImageSet
    num_classes: int

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise DatasetError(f"num_classes must be an int, got {self.num_classes!r}")
        if self.num_classes < 1:
            raise DatasetError(f"num_classes must be at least 1, got {self.num_classes}")
        for split in ("train", "test"):
            images = getattr(self, split)
            if not isinstance(images, ImageSet):
                raise DatasetError(f"RawDataset.{split} must be an ImageSet, got {images!r}")
            if len(images) == 0:
                raise DatasetError(f"the {split} set is empty")
            _check_label_range(images.labels, self.num_classes, f"the {split} set")
        train_shape = tuple(self.train.images.shape[1:])
        test_shape = tuple(self.test.images.shape[1:])
        if train_shape != test_shape:
            raise DatasetError(
                f"train images have shape [C, H, W] = {list(train_shape)} "
                f"but test images {list(test_shape)}"
            )


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A dataset ready for training: train/val/test sets plus normalisation statistics.

    ``val`` is held out of the official training set for model and graph selection; ``test``
    is only for final reports. ``mean``/``std`` are per channel, over the ``train`` split's
    pixels scaled to [0, 1] (``std`` is the population standard deviation).
    """

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[2]), int(self.train.images.shape[3])


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
) -> DatasetSplits:
    """Load the dataset registered as ``name`` and hold a stratified validation split out of it.

    ``data_dir`` defaults to ``$DCL_SEARCH_DATA``, else ``./data``. ``val_fraction`` (strictly
    between 0 and 1) of every class of the official training set goes to ``val``, chosen with
    ``split_seed``; the official test set is returned untouched.
    """
    loader = DATASETS.get(name)
    _check_val_fraction(val_fraction)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise DatasetError(f"split_seed must be an int, got {split_seed!r}")
    raw = loader(resolve_data_dir(data_dir))
    if not isinstance(raw, RawDataset):
        raise DatasetError(
            f"the loader of dataset {name!r} returned {type(raw).__name__}, not a RawDataset"
        )
    keep, held_out = stratified_split(raw.train.labels, val_fraction, split_seed)
    train = raw.train.select(keep)
    mean, std = channel_stats(train.images)
    return DatasetSplits(
        name=name,
        train=train,
        val=raw.train.select(held_out),
        test=raw.test,
        num_classes=raw.num_classes,
        mean=mean,
        std=std,
    )


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 ``[N, C, H, W]`` images scaled to [0, 1]."""
    n, c, h, w = images.shape
    if n == 0:
        raise DatasetError("cannot compute channel statistics of an empty image set")
    # A per-channel histogram of the 256 values gives exact sums, is several times faster than
    # arithmetic on widened copies, and chunks bound the temporary memory (ImageNet32 is 4 GB).
    histogram = torch.zeros(c, 256, dtype=torch.int64)
    per_chunk = max(1, (1 << 26) // (c * h * w))
    for start in range(0, n, per_chunk):
        chunk = images[start : start + per_chunk]
        for channel in range(c):
            histogram[channel] += torch.bincount(chunk[:, channel].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.float64)
    count = n * h * w
    mean = (histogram.double() * values).sum(dim=1) / count
    var = ((histogram.double() * values.square()).sum(dim=1) / count - mean.square()).clamp_min(0)
    return (
        tuple(float(m) / 255.0 for m in mean),
        tuple(math.sqrt(float(v)) / 255.0 for v in var),
    )


def _check_val_fraction(val_fraction: float) -> None:
    ok = isinstance(val_fraction, (int, float)) and not isinstance(val_fraction, bool)
    if not ok or not 0.0 < val_fraction < 1.0:
        raise DatasetError(
            f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}"
        )


def _check_label_range(labels: torch.Tensor, num_classes: int, where: str) -> None:
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DatasetError(
            f"labels of {where} must lie in 0..{num_classes - 1}, found {low}..{high}"
        )


def _is_tensor(value: object, dtype: torch.dtype, dim: int) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.dtype == dtype
        and value.dim() == dim
        and value.device.type == "cpu"
    )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {list(value.shape)} on {value.device}"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Helpers shared by the format loaders.


def one_line(error: BaseException) -> str:
    """``error`` as ``Type: message`` on a single line, for wrapping foreign exceptions."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def require_files(dataset: str, files: Iterable[Path], *, layout: str, source: str) -> None:
    """Raise the one-line 'dataset not found' error if any of ``files`` is missing."""
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise missing_error(dataset, missing, layout=layout, source=source)


def missing_error(
    dataset: str, looked_for: Sequence[Path | str], *, layout: str, source: str
) -> DatasetError:
    shown = ", ".join(str(path) for path in looked_for)
    return DatasetError(
        f"{dataset} dataset not found: missing {shown}; expected layout: {layout}; {source}"
    )


def labels_from(
    values: object, path: Path, *, num_classes: int, first: int = 0, key: str = "labels"
) -> torch.Tensor:
    """Labels ``first..first + num_classes - 1`` from ``path``, as int64 ``0..num_classes - 1``."""
    try:
        array = np.asarray(values)
    except Exception as error:  # arbitrary unpickled objects can fail in arbitrary ways
        raise DatasetError(
            f"{path}: {key!r} is not an array of labels ({one_line(error)})"
        ) from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)  # MATLAB stores vectors as [N, 1]
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DatasetError(
            f"{path}: {key!r} must be a 1-D sequence of integers, "
            f"got {array.dtype} array of shape {list(array.shape)}"
        )
    labels = array.astype(np.int64) - first
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{path}: {key!r} must lie in {first}..{first + num_classes - 1}, "
            f"found {labels.min() + first}..{labels.max() + first}"
        )
    return torch.from_numpy(np.ascontiguousarray(labels))


def planar_images(data: object, path: Path, *, side: int = 32, key: str = "data") -> torch.Tensor:
    """CIFAR-style rows (``[N, 3 * side * side]`` uint8, one colour plane after another)."""
    if not isinstance(data, np.ndarray):
        raise DatasetError(f"{path}: {key!r} must be a numpy array, got {type(data).__name__}")
    width = 3 * side * side
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != width:
        raise DatasetError(
            f"{path}: {key!r} must be a uint8 array of shape [N, {width}], "
            f"got {data.dtype} array of shape {list(data.shape)}"
        )
    return torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, side, side)))


def checked_set(images: torch.Tensor, labels: torch.Tensor, path: Path) -> ImageSet:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    return ImageSet(images, labels)


def concat_sets(parts: Sequence[ImageSet]) -> ImageSet:
    if len(parts) == 1:
        return parts[0]
    return ImageSet(
        torch.cat([part.images for part in parts]), torch.cat([part.labels for part in parts])
    )

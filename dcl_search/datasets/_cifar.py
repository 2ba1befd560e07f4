"""CIFAR-10 and CIFAR-100, python version (pickled batches)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

from dcl_search._errors import DatasetError
from dcl_search.datasets._base import (
    ImageSet,
    RawDataset,
    checked_set,
    concat_sets,
    labels_from,
    one_line,
    planar_images,
    register_dataset,
    require_files,
)

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class _CifarSpec:
    name: str
    folder: str
    archive: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    num_classes: int


CIFAR10 = _CifarSpec(
    name="cifar10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    label_key="labels",
    num_classes=10,
)
CIFAR100 = _CifarSpec(
    name="cifar100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    train_files=("train",),
    test_file="test",
    label_key="fine_labels",
    num_classes=100,
)


@register_dataset("cifar10")
def load_cifar10(data_dir: Path) -> RawDataset:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py/``."""
    return _load_cifar(CIFAR10, data_dir)


@register_dataset("cifar100")
def load_cifar100(data_dir: Path) -> RawDataset:
    """CIFAR-100 (fine labels) from ``data_dir/cifar-100-python/``."""
    return _load_cifar(CIFAR100, data_dir)


def _load_cifar(spec: _CifarSpec, data_dir: Path) -> RawDataset:
    folder = data_dir / spec.folder
    names = (*spec.train_files, spec.test_file)
    require_files(
        spec.name,
        [folder / name for name in names],
        layout=f"{folder}/{{{','.join(names)}}}",
        source=f"download {spec.archive} from {CIFAR_URL} and extract it into {data_dir}",
    )
    train = concat_sets([_read_batch(folder / name, spec) for name in spec.train_files])
    test = _read_batch(folder / spec.test_file, spec)
    return RawDataset(train, test, spec.num_classes)


def _read_batch(path: Path, spec: _CifarSpec) -> ImageSet:
    try:
        with path.open("rb") as file:
            batch = pickle.load(file, encoding="bytes")
    except Exception as error:  # a corrupt pickle can raise nearly any exception
        raise DatasetError(f"{path}: not a readable CIFAR pickle ({one_line(error)})") from None
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    data = _entry(batch, "data", path)
    labels = _entry(batch, spec.label_key, path)
    images = planar_images(data, path)
    return checked_set(
        images,
        labels_from(labels, path, num_classes=spec.num_classes, key=spec.label_key),
        path,
    )


def _entry(batch: dict, key: str, path: Path) -> object:
    # The originals have bytes keys; re-pickled copies (e.g. encoding="latin1") have str keys.
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    found = ", ".join(repr(k) for k in batch)
    raise DatasetError(f"{path}: missing key {key.encode()!r} (keys found: {found})")

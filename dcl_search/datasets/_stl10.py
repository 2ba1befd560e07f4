"""STL-10, binary version (labelled train and test sets; the unlabelled set is not used)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dcl_search._errors import DatasetError
from dcl_search.datasets._base import (
    ImageSet,
    RawDataset,
    checked_set,
    labels_from,
    one_line,
    register_dataset,
    require_files,
)

STL10_URL = "https://cs.stanford.edu/~acoates/stl10/"
FOLDER = "stl10_binary"
SIDE = 96


@register_dataset("stl10")
def load_stl10(data_dir: Path) -> RawDataset:
    """STL-10 from ``data_dir/stl10_binary/``: 96x96 colour images, 10 classes."""
    folder = data_dir / FOLDER
    names = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")
    require_files(
        "stl10",
        [folder / name for name in names],
        layout=f"{folder}/{{{','.join(names)}}}",
        source=f"download stl10_binary.tar.gz from {STL10_URL} and extract it into {data_dir}",
    )
    train = _read_pair(folder / "train_X.bin", folder / "train_y.bin")
    test = _read_pair(folder / "test_X.bin", folder / "test_y.bin")
    return RawDataset(train, test, num_classes=10)


def _read_pair(images_path: Path, labels_path: Path) -> ImageSet:
    data = _read_bytes(images_path)
    image_bytes = 3 * SIDE * SIDE
    if data.size == 0 or data.size % image_bytes:
        raise DatasetError(
            f"{images_path}: size {data.size} bytes is not a positive multiple of "
            f"{image_bytes} (3x{SIDE}x{SIDE} images)"
        )
    # Each channel is stored column-major, so the last two axes come out as [W, H].
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2)
    labels = labels_from(_read_bytes(labels_path), labels_path, num_classes=10, first=1)
    return checked_set(torch.from_numpy(np.ascontiguousarray(images)), labels, images_path)


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({one_line(error)})") from None

"""Downsampled ImageNet 32x32 (Chrabaszcz et al. 2017), npz version."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcl_search._errors import DatasetError
from dcl_search.datasets._base import (
    ImageSet,
    RawDataset,
    checked_set,
    concat_sets,
    labels_from,
    missing_error,
    one_line,
    planar_images,
    register_dataset,
    require_files,
)

IMAGENET32_URL = "https://image-net.org/download-images.php"
SOURCE = (
    f"download Imagenet32_train_npz.zip and Imagenet32_val_npz.zip (Downsampled ImageNet 32x32) "
    f"from {IMAGENET32_URL} and extract them into"
)
TRAIN_FILES = tuple(f"train_data_batch_{i}.npz" for i in range(1, 11))
VAL_FILE = "val_data.npz"
NUM_CLASSES = 1000


@register_dataset("imagenet32")
def load_imagenet32(data_dir: Path) -> RawDataset:
    """ImageNet32: 1.28M training images, the official 50,000 validation images as test set.

    Each of ``train_data_batch_{1..10}.npz`` and ``val_data.npz`` may sit in ``data_dir``,
    ``data_dir/Imagenet32_{train,val}_npz``, ``data_dir/imagenet32`` or
    ``data_dir/imagenet32/Imagenet32_{train,val}_npz``.
    """
    train_dir = _find_folder(data_dir, TRAIN_FILES[0], "Imagenet32_train_npz")
    val_dir = _find_folder(data_dir, VAL_FILE, "Imagenet32_val_npz")
    require_files(
        "imagenet32",
        [train_dir / name for name in TRAIN_FILES],
        layout=f"{train_dir}/train_data_batch_{{1..10}}.npz",
        source=f"{SOURCE} {data_dir}",
    )
    train = concat_sets([_read_npz(train_dir / name) for name in TRAIN_FILES])
    return RawDataset(train, _read_npz(val_dir / VAL_FILE), num_classes=NUM_CLASSES)


def _find_folder(data_dir: Path, first_file: str, zip_folder: str) -> Path:
    candidates = (
        data_dir,
        data_dir / zip_folder,
        data_dir / "imagenet32",
        data_dir / "imagenet32" / zip_folder,
    )
    for folder in candidates:
        if (folder / first_file).is_file():
            return folder
    raise missing_error(
        "imagenet32",
        [folder / first_file for folder in candidates],
        layout=(
            f"{data_dir}/Imagenet32_train_npz/train_data_batch_{{1..10}}.npz and "
            f"{data_dir}/Imagenet32_val_npz/{VAL_FILE} (or all of them directly in {data_dir})"
        ),
        source=f"{SOURCE} {data_dir}",
    )


def _read_npz(path: Path) -> ImageSet:
    try:
        # allow_pickle=False: a data file must never be able to run code.
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in ("data", "labels") if key not in npz.files]
            if missing:
                raise DatasetError(
                    f"{path}: missing key(s) {', '.join(missing)} (keys found: "
                    f"{', '.join(npz.files)})"
                )
            data, labels = npz["data"], npz["labels"]
    except DatasetError:
        raise
    except Exception as error:  # zipfile, numpy and OS errors alike mean an unreadable file
        raise DatasetError(f"{path}: not a readable .npz file ({one_line(error)})") from None
    images = planar_images(data, path)
    return checked_set(images, labels_from(labels, path, num_classes=NUM_CLASSES, first=1), path)

"""SVHN, cropped digits (format 2: ``train_32x32.mat`` / ``test_32x32.mat``)."""

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
    missing_error,
    one_line,
    register_dataset,
    require_files,
)

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = ("train_32x32.mat", "test_32x32.mat")


@register_dataset("svhn")
def load_svhn(data_dir: Path) -> RawDataset:
    """SVHN from ``data_dir/`` or ``data_dir/svhn/`` (the extra set is not used)."""
    folder = _find_folder(data_dir)
    require_files(
        "svhn", [folder / name for name in FILES], layout=_layout(folder), source=_source(folder)
    )
    return RawDataset(_read_mat(folder / FILES[0]), _read_mat(folder / FILES[1]), num_classes=10)


def _find_folder(data_dir: Path) -> Path:
    candidates = (data_dir, data_dir / "svhn")
    for folder in candidates:
        if (folder / FILES[0]).is_file():
            return folder
    raise missing_error(
        "svhn",
        [folder / FILES[0] for folder in candidates],
        layout=f"{_layout(data_dir)} or {_layout(data_dir / 'svhn')}",
        source=_source(data_dir),
    )


def _layout(folder: Path) -> str:
    return f"{folder}/{{{','.join(FILES)}}}"


def _source(folder: Path) -> str:
    return f"download {' and '.join(FILES)} from {SVHN_URL} into {folder}"


def _read_mat(path: Path) -> ImageSet:
    from scipy.io import loadmat  # only needed here, and slow to import

    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except Exception as error:  # scipy raises ValueError, MatReadError, NotImplementedError, ...
        raise DatasetError(f"{path}: not a readable MATLAB v5 file ({one_line(error)})") from None
    for key in ("X", "y"):
        if key not in mat:
            raise DatasetError(f"{path}: missing variable {key!r}")
    data = mat["X"]
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[2] != 3:
        raise DatasetError(
            f"{path}: 'X' must be a uint8 array of shape [H, W, 3, N], "
            f"got {data.dtype} array of shape {list(data.shape)}"
        )
    # X is [H, W, C, N]; digit 0 is stored as label 10.
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(3, 2, 0, 1)))
    labels = labels_from(mat["y"], path, num_classes=11, key="y")
    labels[labels == 10] = 0
    return checked_set(images, labels, path)

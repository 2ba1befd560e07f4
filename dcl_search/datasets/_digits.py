"""scikit-learn's bundled 8x8 handwritten digits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from dcl_search.datasets._base import ImageSet, RawDataset, register_dataset
from dcl_search.datasets._split import stratified_split

# The digits have no official test split; a fixed seed keeps the held-out test set identical
# across runs whatever seed the run uses for its validation split.
TEST_FRACTION = 0.2
TEST_SEED = 0


@register_dataset("digits")
def load_digits(data_dir: Path) -> RawDataset:
    """1,797 grayscale 8x8 digits, 10 classes; 20% of every class is the test set.

    Ships with scikit-learn, so ``data_dir`` is unused.
    """
    del data_dir
    images, target = _bundled_digits()
    # Pixel values are 0..16; round half up to 0..255.
    scaled = np.floor(images * (255.0 / 16.0) + 0.5).clip(0, 255).astype(np.uint8)
    everything = ImageSet(
        torch.from_numpy(np.ascontiguousarray(scaled[:, None])),
        torch.as_tensor(target, dtype=torch.int64),
    )
    train, test = stratified_split(everything.labels, TEST_FRACTION, TEST_SEED)
    return RawDataset(everything.select(train), everything.select(test), num_classes=10)


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images N×8×8 float, targets) from scikit-learn's bundled CSV.

    Read straight from the file: importing scikit-learn for it costs ~0.8 s in the search
    driver and again in every trial worker. Its own loader is the fallback.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    folders = (spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.images, bunch.target

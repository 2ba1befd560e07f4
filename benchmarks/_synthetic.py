"""A synthetic CIFAR-100 in torchvision's on-disk format, for benchmarks that run a search.

Nothing can be downloaded here, and training speed does not depend on what the pixels show;
writing the real format lets the search load it with the project's own CIFAR-100 loader.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

TEST_IMAGES = 1000
CLASSES = 100


def write_synthetic_cifar100(
    data_dir: Path, train_images: int, test_images: int = TEST_IMAGES, seed: int = 0
) -> Path:
    """Writes ``data_dir/cifar-100-python/{train,test,meta}`` as torchvision's archive holds them
    (bytes keys, planar uint8 rows of 3 × 32 × 32) with random pixels and labels; returns
    ``data_dir``."""
    rng = np.random.default_rng(seed)
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train_images), ("test", test_images)):
        fine = rng.integers(0, CLASSES, size=n)
        batch = {
            b"filenames": [f"synthetic_{i:06d}.png".encode() for i in range(n)],
            b"batch_label": f"{name} synthetic".encode(),
            b"fine_labels": [int(label) for label in fine],
            b"coarse_labels": [int(label) // 5 for label in fine],
            b"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
        }
        with (folder / name).open("wb") as file:
            pickle.dump(batch, file, protocol=2)  # the originals are Python 2 pickles
    meta = {
        b"fine_label_names": [f"class_{i:03d}".encode() for i in range(CLASSES)],
        b"coarse_label_names": [f"superclass_{i:02d}".encode() for i in range(CLASSES // 5)],
    }
    with (folder / "meta").open("wb") as file:
        pickle.dump(meta, file, protocol=2)
    return data_dir

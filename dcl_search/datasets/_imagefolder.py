"""Folders of image files: generic ImageFolder layouts and Tiny ImageNet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from dcl_search._errors import DatasetError
from dcl_search.datasets._base import (
    ImageSet,
    RawDataset,
    missing_error,
    one_line,
    register_dataset,
)

# torchvision.datasets.folder.IMG_EXTENSIONS, matched case-insensitively as torchvision does.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


@register_dataset("imagefolder")
def load_imagefolder(data_dir: Path) -> RawDataset:
    """``data_dir/train/<class>/...`` and ``data_dir/test/<class>/...`` (or ``val/``).

    As torchvision's ImageFolder: classes are the sorted sub-folder names (hidden ones
    skipped), images are found recursively, and every image is converted to RGB. All images
    must have the same size.
    """
    train_dir = data_dir / "train"
    test_dir = data_dir / "test" if (data_dir / "test").is_dir() else data_dir / "val"
    missing = [folder for folder in (train_dir, test_dir) if not folder.is_dir()]
    if missing:
        raise missing_error(
            "imagefolder",
            missing,
            layout=(
                f"{train_dir}/<class>/<image files> and {data_dir}/test/<class>/<image files> "
                f"(or {data_dir}/val/<class>/...), with the same class folders in both"
            ),
            source=f"put your images in that layout under {data_dir}",
        )
    classes = _class_folders(train_dir)
    test_classes = _class_folders(test_dir)
    if test_classes != classes:
        raise DatasetError(
            f"imagefolder: {test_dir} has class folders {_diff(test_classes, classes)} "
            f"compared to {train_dir}; both must hold the same class folders"
        )
    train_files, train_labels = _scan(train_dir, classes, require_each=True)
    test_files, test_labels = _scan(test_dir, classes, require_each=False)
    if not test_files:
        raise DatasetError(
            f"imagefolder: no image files ({', '.join(IMG_EXTENSIONS)}) in {test_dir}"
        )
    reference = train_files[0]
    size = _image_size(reference)
    return RawDataset(
        ImageSet(_decode_all(train_files, size, reference), torch.tensor(train_labels)),
        ImageSet(_decode_all(test_files, size, reference), torch.tensor(test_labels)),
        num_classes=len(classes),
    )


@register_dataset("tiny-imagenet")
def load_tiny_imagenet(data_dir: Path) -> RawDataset:
    """Tiny ImageNet (200 classes of 64x64 images); the labelled val set serves as test set."""
    root = data_dir / "tiny-imagenet-200"
    wnids_file = root / "wnids.txt"
    annotations = root / "val" / "val_annotations.txt"
    missing = [path for path in (wnids_file, annotations) if not path.is_file()]
    if missing:
        raise missing_error(
            "tiny-imagenet",
            missing,
            layout=(
                f"{root}/wnids.txt, {root}/train/<wnid>/images/*.JPEG, {root}/val/images/*.JPEG "
                f"and {root}/val/val_annotations.txt"
            ),
            source=f"download {TINY_IMAGENET_URL} and extract it into {data_dir}",
        )
    wnids = sorted(_read_lines(wnids_file))
    if not wnids or len(set(wnids)) != len(wnids):
        raise DatasetError(f"{wnids_file}: expected distinct class ids, one per line")
    train_files: list[Path] = []
    train_labels: list[int] = []
    for label, wnid in enumerate(wnids):
        files = _tiny_train_images(root / "train" / wnid / "images")
        train_files += files
        train_labels += [label] * len(files)
    test_files, test_labels = _tiny_val(root / "val" / "images", annotations, wnids)
    reference = train_files[0]
    size = _image_size(reference)
    return RawDataset(
        ImageSet(_decode_all(train_files, size, reference), torch.tensor(train_labels)),
        ImageSet(_decode_all(test_files, size, reference), torch.tensor(test_labels)),
        num_classes=len(wnids),
    )


def _tiny_train_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"tiny-imagenet: missing folder {folder} (a class listed in wnids.txt)")
    files = sorted(path for path in folder.iterdir() if _is_image(path.name))
    if not files:
        raise DatasetError(f"tiny-imagenet: no image files in {folder}")
    return files


def _tiny_val(
    images_dir: Path, annotations: Path, wnids: Sequence[str]
) -> tuple[list[Path], list[int]]:
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    entries: dict[str, int] = {}
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            raise DatasetError(
                f"{annotations}: line {number} should be '<file>\\t<wnid listed in wnids.txt>"
                f"\\t...', got {line[:80]!r}"
            )
        entries[fields[0]] = label_of[fields[1]]
    if not entries:
        raise DatasetError(f"{annotations}: no annotations")
    names = sorted(entries)
    files = [images_dir / name for name in names]
    for path in files:
        if not path.is_file():
            raise DatasetError(f"tiny-imagenet: {path} is listed in {annotations} but missing")
    return files, [entries[name] for name in names]


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read ({one_line(error)})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _class_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _diff(found: Sequence[str], expected: Sequence[str]) -> str:
    extra = sorted(set(found) - set(expected))
    absent = sorted(set(expected) - set(found))
    return f"extra: {extra or 'none'}, absent: {absent or 'none'}"


def _scan(
    root: Path, classes: Sequence[str], *, require_each: bool
) -> tuple[list[Path], list[int]]:
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _images_under(root / name)
        if require_each and not found:
            raise DatasetError(
                f"imagefolder: class folder {root / name} holds no image files "
                f"({', '.join(IMG_EXTENSIONS)})"
            )
        files += found
        labels += [label] * len(found)
    return files, labels


def _images_under(folder: Path) -> list[Path]:
    # Same walk as torchvision's make_dataset: sorted, recursive, following links.
    found = []
    for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
        found += [Path(dirpath) / name for name in sorted(filenames) if _is_image(name)]
    return found


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file."""
    return _decode(path).shape[:2]


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBomb...
        raise DatasetError(f"{path}: unreadable image ({one_line(error)})") from None


def _decode_all(files: Sequence[Path], size: tuple[int, int], reference: Path) -> torch.Tensor:
    """Decode ``files`` into one uint8 [N, 3, H, W] tensor; every image must be ``size``."""
    height, width = size
    out = np.empty((len(files), 3, height, width), dtype=np.uint8)

    def fill(index: int) -> None:
        pixels = _decode(files[index])
        if pixels.shape[:2] != (height, width):
            raise DatasetError(
                f"{files[index]}: image is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but "
                f"{reference} is {width}x{height}; all images must have the same size"
            )
        out[index] = pixels.transpose(2, 0, 1)

    # Decoding releases the GIL, so threads speed up folders of ~100k JPEGs several times.
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fill, range(len(files))):
            pass
    return torch.from_numpy(out)

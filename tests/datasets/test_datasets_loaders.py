"""Every registered format, read back from tiny files written in the real on-disk format."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from dcl_search._errors import DatasetError
from dcl_search.datasets import DATASETS, RawDataset, load_dataset


def load_raw(name: str, data_dir: Path) -> RawDataset:
    return DATASETS.get(name)(data_dir)


def escaped(path: Path) -> str:
    return re.escape(str(path))


def planar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def test_all_formats_are_registered() -> None:
    assert DATASETS.names() == [
        "cifar10",
        "cifar100",
        "digits",
        "imagefolder",
        "imagenet32",
        "stl10",
        "svhn",
        "tiny-imagenet",
    ]


# --- CIFAR ------------------------------------------------------------------------------------


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar10(root: Path) -> tuple[list[np.ndarray], list[list[int]]]:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    datas, labels = [], []
    for index, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        data = planar_rows(rng, 4)
        batch_labels = [(2 * index + k) % 10 for k in range(4)]
        write_pickle(
            folder / name,
            {b"batch_label": b"x", b"labels": batch_labels, b"data": data, b"filenames": []},
        )
        datas.append(data)
        labels.append(batch_labels)
    return datas, labels


def test_cifar10_round_trip(tmp_path: Path) -> None:
    datas, labels = write_cifar10(tmp_path)
    raw = load_raw("cifar10", tmp_path)
    assert raw.num_classes == 10
    assert raw.train.images.shape == (20, 3, 32, 32)
    assert raw.train.images.dtype == torch.uint8 and raw.train.labels.dtype == torch.int64
    assert raw.test.images.shape == (4, 3, 32, 32)
    # Batches are concatenated in order 1..5; rows are planar R, G, B, each row-major.
    assert raw.train.labels.tolist() == sum(labels[:5], [])
    assert raw.test.labels.tolist() == labels[5]
    row = datas[2][1]  # batch 3, image 1 -> train index 9
    assert raw.train.images[9, 1, 4, 7] == row[1 * 1024 + 4 * 32 + 7]
    assert raw.train.images[9, 2, 31, 0] == row[2 * 1024 + 31 * 32]
    assert torch.equal(raw.test.images, torch.from_numpy(datas[5].reshape(4, 3, 32, 32)))
    assert raw.train.images.is_contiguous()


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train = planar_rows(rng, 3)
    test = planar_rows(rng, 2)
    write_pickle(
        folder / "train", {b"data": train, b"fine_labels": [0, 57, 99], b"coarse_labels": [0, 1, 2]}
    )
    write_pickle(
        folder / "test", {b"data": test, b"fine_labels": [42, 1], b"coarse_labels": [3, 4]}
    )
    raw = load_raw("cifar100", tmp_path)
    assert raw.num_classes == 100
    assert raw.train.labels.tolist() == [0, 57, 99]
    assert raw.test.labels.tolist() == [42, 1]
    assert raw.train.images[2, 0, 0, 5] == train[2, 5]


def test_cifar_missing_names_paths_layout_and_source(tmp_path: Path) -> None:
    expected = escaped(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    with pytest.raises(
        DatasetError, match=rf"cifar10 dataset not found: missing {expected}"
    ) as info:
        load_raw("cifar10", tmp_path)
    message = str(info.value)
    assert "test_batch" in message and "expected layout" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "\n" not in message
    with pytest.raises(DatasetError, match=escaped(tmp_path / "cifar-100-python" / "train")):
        load_raw("cifar100", tmp_path)


def test_cifar_pickle_without_labels_names_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    write_pickle(bad, {b"data": planar_rows(np.random.default_rng(0), 4)})
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: missing key b'labels'"):
        load_raw("cifar10", tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a pickle at all", "not a readable CIFAR pickle"),
        (pickle.dumps([1, 2, 3]), "expected a pickled dict"),
        (pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}), r"\[N, 3072\]"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}), "0..9"),
        (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]}), "2 labels"),
    ],
)
def test_cifar_malformed_batches(tmp_path: Path, content: bytes, problem: str) -> None:
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "test_batch"
    bad.write_bytes(content)
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: .*{problem}"):
        load_raw("cifar10", tmp_path)


# --- SVHN -------------------------------------------------------------------------------------


def write_svhn(path: Path, labels: list[int]) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    x = np.random.default_rng(n).integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = np.array(labels, dtype=np.uint8).reshape(n, 1)
    scipy.io.savemat(path, {"X": x, "y": y})
    return x


@pytest.mark.parametrize("sub", ["", "svhn"])
def test_svhn_round_trip_and_label_10_is_digit_0(tmp_path: Path, sub: str) -> None:
    folder = tmp_path / sub if sub else tmp_path
    x_train = write_svhn(folder / "train_32x32.mat", [10, 1, 9, 10])
    x_test = write_svhn(folder / "test_32x32.mat", [5, 10, 2])
    raw = load_raw("svhn", tmp_path)
    assert raw.num_classes == 10
    assert raw.train.images.shape == (4, 3, 32, 32) and raw.test.images.shape == (3, 3, 32, 32)
    assert raw.train.labels.tolist() == [0, 1, 9, 0]
    assert raw.test.labels.tolist() == [5, 0, 2]
    # X is [H, W, C, N]: pixel (y=3, x=20) of channel 2 of image 1.
    assert raw.train.images[1, 2, 3, 20] == x_train[3, 20, 2, 1]
    assert raw.train.images[1, 2, 20, 3] == x_train[20, 3, 2, 1]
    assert torch.equal(raw.test.images, torch.from_numpy(x_test.transpose(3, 2, 0, 1).copy()))


def test_svhn_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=escaped(tmp_path / "svhn" / "train_32x32.mat")) as info:
        load_raw("svhn", tmp_path)
    assert str(tmp_path / "train_32x32.mat") in str(info.value)
    assert "http://ufldl.stanford.edu/housenumbers/" in str(info.value)
    write_svhn(tmp_path / "train_32x32.mat", [1, 2])  # train present, test missing
    with pytest.raises(DatasetError, match=rf"missing {escaped(tmp_path / 'test_32x32.mat')}"):
        load_raw("svhn", tmp_path)


def test_svhn_malformed(tmp_path: Path) -> None:
    write_svhn(tmp_path / "train_32x32.mat", [1, 2])
    bad = tmp_path / "test_32x32.mat"
    scipy.io.savemat(bad, {"X": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: missing variable 'y'"):
        load_raw("svhn", tmp_path)
    bad.write_bytes(b"garbage" * 20)
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: not a readable MATLAB"):
        load_raw("svhn", tmp_path)
    scipy.io.savemat(bad, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: 'y' must lie in"):
        load_raw("svhn", tmp_path)


# --- STL-10 -----------------------------------------------------------------------------------


def write_stl10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    images = {}
    for split, labels in (("train", [1, 10, 5]), ("test", [3, 10])):
        img = rng.integers(0, 256, size=(len(labels), 3, 96, 96), dtype=np.uint8)  # [N, C, H, W]
        # The files store every channel column-major, i.e. as [C, W, H].
        (folder / f"{split}_X.bin").write_bytes(img.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes(labels))
        images[split] = img
    return images["train"], images["test"]


def test_stl10_round_trip_transposes_correctly(tmp_path: Path) -> None:
    train, test = write_stl10(tmp_path)
    raw = load_raw("stl10", tmp_path)
    assert raw.num_classes == 10
    assert raw.train.images.shape == (3, 3, 96, 96)
    assert raw.train.labels.tolist() == [0, 9, 4]
    assert raw.test.labels.tolist() == [2, 9]
    assert train[1, 0, 2, 50] != train[1, 0, 50, 2]  # a non-symmetric pixel pair
    assert raw.train.images[1, 0, 2, 50] == train[1, 0, 2, 50]
    assert raw.train.images[1, 0, 50, 2] == train[1, 0, 50, 2]
    assert torch.equal(raw.test.images, torch.from_numpy(test))


def test_stl10_missing(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    with pytest.raises(DatasetError, match=rf"stl10 .*{escaped(folder / 'train_X.bin')}") as info:
        load_raw("stl10", tmp_path)
    assert "test_y.bin" in str(info.value) and "stl10_binary.tar.gz" in str(info.value)


def test_stl10_malformed(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DatasetError, match=rf"{escaped(folder / 'test_X.bin')}: size 1000"):
        load_raw("stl10", tmp_path)
    write_stl10(tmp_path / "again")
    folder = tmp_path / "again" / "stl10_binary"
    (folder / "train_y.bin").write_bytes(bytes([1, 0, 2]))
    with pytest.raises(DatasetError, match=rf"{escaped(folder / 'train_y.bin')}: .*1\.\.10"):
        load_raw("stl10", tmp_path / "again")
    (folder / "train_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DatasetError, match=rf"{escaped(folder / 'train_X.bin')}: 3 images but 2"):
        load_raw("stl10", tmp_path / "again")


# --- Tiny ImageNet ----------------------------------------------------------------------------

TINY_COLOURS = {"n02": (200, 10, 10), "n01": (10, 200, 10), "n03": (10, 10, 200)}


def write_tiny(root: Path) -> Path:
    tiny = root / "tiny-imagenet-200"
    tiny.mkdir(parents=True)
    (tiny / "wnids.txt").write_text("n02\nn01\nn03\n")  # unsorted on purpose
    for wnid, colour in TINY_COLOURS.items():
        images = tiny / "train" / wnid / "images"
        images.mkdir(parents=True)
        for k in range(2):
            Image.new("RGB", (16, 16), colour).save(images / f"{wnid}_{k}.JPEG", quality=95)
        (tiny / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    val = tiny / "val" / "images"
    val.mkdir(parents=True)
    annotations = [("val_1.JPEG", "n03"), ("val_0.JPEG", "n02"), ("val_2.JPEG", "n01")]
    for name, wnid in annotations:
        Image.new("RGB", (16, 16), TINY_COLOURS[wnid]).save(val / name, quality=95)
    Image.new("L", (16, 16), 77).save(val / "val_3.JPEG")  # grayscale, as some real ones are
    annotations.append(("val_3.JPEG", "n01"))
    lines = [f"{name}\t{wnid}\t0\t0\t15\t15\n" for name, wnid in annotations]
    (tiny / "val" / "val_annotations.txt").write_text("".join(lines))
    return tiny


def test_tiny_imagenet_round_trip(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    raw = load_raw("tiny-imagenet", tmp_path)
    assert raw.num_classes == 3
    assert raw.train.images.shape == (6, 3, 16, 16)
    # Classes follow sorted wnids: n01 -> 0, n02 -> 1, n03 -> 2.
    assert raw.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    green = torch.tensor(TINY_COLOURS["n01"], dtype=torch.float32)
    assert torch.allclose(raw.train.images[0, :, 8, 8].float(), green, atol=3)
    # The val set is the test set, in file-name order.
    assert raw.test.labels.tolist() == [1, 2, 0, 0]
    red = torch.tensor(TINY_COLOURS["n02"], dtype=torch.float32)
    assert torch.allclose(raw.test.images[0, :, 3, 3].float(), red, atol=3)
    grey = raw.test.images[3]
    assert (
        grey.shape == (3, 16, 16)
        and torch.equal(grey[0], grey[1])
        and torch.equal(grey[1], grey[2])
    )
    assert abs(int(grey[0, 5, 5]) - 77) <= 2


def test_tiny_imagenet_missing(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny-imagenet-200"
    with pytest.raises(
        DatasetError, match=rf"tiny-imagenet .*{escaped(tiny / 'wnids.txt')}"
    ) as info:
        load_raw("tiny-imagenet", tmp_path)
    assert "val_annotations.txt" in str(info.value)
    assert "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in str(info.value)


def test_tiny_imagenet_malformed(tmp_path: Path) -> None:
    tiny = write_tiny(tmp_path)
    annotations = tiny / "val" / "val_annotations.txt"
    annotations.write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match=rf"{escaped(annotations)}: line 1"):
        load_raw("tiny-imagenet", tmp_path)
    annotations.write_text("val_0.JPEG\tn01\t0\t0\t1\t1\n")
    broken = tiny / "train" / "n02" / "images" / "n02_1.JPEG"
    broken.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match=rf"{escaped(broken)}: unreadable image"):
        load_raw("tiny-imagenet", tmp_path)


# --- ImageFolder ------------------------------------------------------------------------------


def write_png(path: Path, value: int, size: tuple[int, int] = (7, 5)) -> None:
    """A W x H PNG whose red channel is ``value`` plus a marker pixel at (x=6, y=1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[..., 0] = value
    pixels[1, size[0] - 1] = (1, 2, 3)
    Image.fromarray(pixels).save(path)


def write_imagefolder(root: Path, test_name: str = "test") -> None:
    for k, cls in enumerate(["dog", "cat"]):
        for j in range(2):
            write_png(root / "train" / cls / f"{j}.png", 10 * k + j)
        write_png(root / test_name / cls / "x.PNG", 100 + k)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_imagefolder_round_trip(tmp_path: Path, test_name: str) -> None:
    write_imagefolder(tmp_path, test_name)
    raw = load_raw("imagefolder", tmp_path)
    assert raw.num_classes == 2
    assert raw.train.images.shape == (4, 3, 5, 7)  # [N, C, H, W] from 7 wide x 5 high
    # Sorted class folders: cat -> 0, dog -> 1.
    assert raw.train.labels.tolist() == [0, 0, 1, 1]
    assert raw.train.images[:, 0, 0, 0].tolist() == [10, 11, 0, 1]
    assert raw.train.images[2, :, 1, 6].tolist() == [1, 2, 3]
    assert raw.test.labels.tolist() == [0, 1]
    assert raw.test.images[:, 0, 4, 2].tolist() == [101, 100]


def test_imagefolder_other_size_names_file_and_sizes(tmp_path: Path) -> None:
    write_imagefolder(tmp_path)
    odd = tmp_path / "test" / "dog" / "y.png"
    write_png(odd, 0, size=(8, 5))
    with pytest.raises(DatasetError, match=rf"{escaped(odd)}: image is 8x5 .* is 7x5"):
        load_raw("imagefolder", tmp_path)


def test_imagefolder_missing_and_mismatched(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=rf"imagefolder .*{escaped(tmp_path / 'train')}") as info:
        load_raw("imagefolder", tmp_path)
    assert "<class>" in str(info.value)
    write_imagefolder(tmp_path)
    write_png(tmp_path / "test" / "bird" / "b.png", 0)
    with pytest.raises(DatasetError, match=r"extra: \['bird'\]"):
        load_raw("imagefolder", tmp_path)


# --- ImageNet32 -------------------------------------------------------------------------------


def write_imagenet32(root: Path, train_dir: str, val_dir: str) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    datas = []
    for i in range(1, 11):
        folder = root / train_dir
        folder.mkdir(parents=True, exist_ok=True)
        data = planar_rows(rng, 2)
        np.savez(folder / f"train_data_batch_{i}.npz", data=data, labels=[i, 1000], mean=[0.0])
        datas.append(data)
    (root / val_dir).mkdir(parents=True, exist_ok=True)
    data = planar_rows(rng, 3)
    np.savez(root / val_dir / "val_data.npz", data=data, labels=[1, 500, 1000])
    datas.append(data)
    return datas


@pytest.mark.parametrize(
    ("train_dir", "val_dir"),
    [("Imagenet32_train_npz", "Imagenet32_val_npz"), ("", ""), ("imagenet32", "imagenet32")],
)
def test_imagenet32_round_trip(tmp_path: Path, train_dir: str, val_dir: str) -> None:
    datas = write_imagenet32(tmp_path, train_dir, val_dir)
    raw = load_raw("imagenet32", tmp_path)
    assert raw.num_classes == 1000
    assert raw.train.images.shape == (20, 3, 32, 32)
    assert raw.train.labels[:4].tolist() == [0, 999, 1, 999]
    assert raw.test.labels.tolist() == [0, 499, 999]
    assert raw.train.images[5, 2, 10, 3] == datas[2][1, 2 * 1024 + 10 * 32 + 3]
    assert torch.equal(raw.test.images, torch.from_numpy(datas[10].reshape(3, 3, 32, 32)))


def test_imagenet32_missing(tmp_path: Path) -> None:
    looked = escaped(tmp_path / "Imagenet32_train_npz" / "train_data_batch_1.npz")
    with pytest.raises(DatasetError, match=rf"imagenet32 dataset not found: .*{looked}") as info:
        load_raw("imagenet32", tmp_path)
    assert str(tmp_path / "imagenet32" / "train_data_batch_1.npz") in str(info.value)
    write_imagenet32(tmp_path, "Imagenet32_train_npz", "Imagenet32_val_npz")
    gone = tmp_path / "Imagenet32_train_npz" / "train_data_batch_7.npz"
    gone.unlink()
    with pytest.raises(DatasetError, match=rf"missing {escaped(gone)}"):
        load_raw("imagenet32", tmp_path)


def test_imagenet32_malformed(tmp_path: Path) -> None:
    write_imagenet32(tmp_path, "", "")
    bad = tmp_path / "val_data.npz"
    np.savez(bad, data=planar_rows(np.random.default_rng(0), 2))
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: missing key\(s\) labels"):
        load_raw("imagenet32", tmp_path)
    np.savez(bad, data=planar_rows(np.random.default_rng(0), 2), labels=[0, 1])
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: 'labels' must lie in 1\.\.1000"):
        load_raw("imagenet32", tmp_path)
    bad.write_bytes(b"PK garbage")
    with pytest.raises(DatasetError, match=rf"{escaped(bad)}: not a readable \.npz"):
        load_raw("imagenet32", tmp_path)


# --- Through load_dataset ---------------------------------------------------------------------


def test_load_dataset_reads_a_real_format(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    splits = load_dataset("cifar10", tmp_path, val_fraction=0.25, split_seed=3)
    assert splits.name == "cifar10"
    assert (splits.in_channels, splits.image_size, splits.num_classes) == (3, (32, 32), 10)
    assert len(splits.train) + len(splits.val) == 20 and len(splits.test) == 4
    assert len(splits.val) == 10  # each of 10 classes has 2 training images: 1 held out each
    assert sorted(splits.val.labels.tolist()) == list(range(10))

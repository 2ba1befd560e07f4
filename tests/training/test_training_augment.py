"""Batch augmentation on the device (random crop of the zero-padded image, h-flip) and Normalizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dcl_search.training import Normalizer, random_crop_flip


def _batch(n: int, channels: int = 3, height: int = 6, width: int = 7, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, height, width), generator=generator).to(torch.uint8)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _crop_offsets(image: torch.Tensor, out: torch.Tensor, padding: int) -> list[tuple[int, int]]:
    """Every (dy, dx) in [0, 2p]² at which the zero-padded image, cropped, equals ``out``."""
    _, height, width = image.shape
    padded = F.pad(image, (padding,) * 4)
    return [
        (dy, dx)
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
        if torch.equal(padded[:, dy : dy + height, dx : dx + width], out)
    ]


@pytest.mark.parametrize("padding", [1, 2])
def test_crop_is_a_shifted_window_of_the_zero_padded_image(padding) -> None:
    images = _batch(64)
    out = random_crop_flip(images, padding, False, _gen(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    offsets = []
    for i in range(len(images)):
        found = _crop_offsets(images[i], out[i], padding)
        assert len(found) == 1, f"image {i}: no unique crop offset in [0, {2 * padding}]"
        offsets.append(found[0])
    # offsets vary, and both extremes of the range occur somewhere in 64 draws
    assert len(set(offsets)) > (2 * padding + 1)
    assert {dy for dy, _ in offsets} == set(range(2 * padding + 1))
    assert {dx for _, dx in offsets} == set(range(2 * padding + 1))


def test_crop_pads_with_zeros() -> None:
    images = torch.full((64, 1, 5, 5), 200, dtype=torch.uint8)
    out = random_crop_flip(images, 2, False, _gen(3))
    values = set(out.unique().tolist())
    assert values == {0, 200}  # shifted windows show zero borders
    assert torch.equal(out[:, :, 2, 2], images[:, :, 2, 2])  # the centre is always inside


def test_flip_only_gives_the_image_or_its_mirror_and_both_occur() -> None:
    images = _batch(64)
    out = random_crop_flip(images, 0, True, _gen(2))
    mirrored = 0
    for i in range(64):
        same, mirror = torch.equal(out[i], images[i]), torch.equal(out[i], images[i].flip(-1))
        assert same or mirror, f"image {i} is neither the input nor its mirror"
        mirrored += mirror
    assert 0 < mirrored < 64
    assert 16 <= mirrored <= 48  # p = 1/2


def test_crop_and_flip_together() -> None:
    images = _batch(32)
    out = random_crop_flip(images, 1, True, _gen(4))
    flipped = 0
    for i in range(32):
        plain = _crop_offsets(images[i], out[i], 1)
        mirror = _crop_offsets(images[i], out[i].flip(-1), 1)
        assert plain or mirror, f"image {i} is no crop of the image or of its mirror"
        flipped += bool(mirror)
    assert 0 < flipped < 32


def test_no_padding_and_no_flip_is_the_identity() -> None:
    images = _batch(8)
    assert torch.equal(random_crop_flip(images, 0, False, _gen()), images)


def test_augmentation_is_deterministic_for_a_seeded_generator() -> None:
    images = _batch(64)
    a = random_crop_flip(images, 2, True, _gen(11))
    b = random_crop_flip(images, 2, True, _gen(11))
    c = random_crop_flip(images, 2, True, _gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    generator = _gen(11)
    first = random_crop_flip(images, 2, True, generator)
    second = random_crop_flip(images, 2, True, generator)  # the generator advances
    assert torch.equal(first, a) and not torch.equal(first, second)


def test_normalizer_is_exact_and_honours_channels_last() -> None:
    images = _batch(4, channels=3, height=5, width=5, seed=5)
    mean, std = (0.2, 0.5, 0.7), (0.3, 0.25, 0.1)
    normalize = Normalizer(mean, std, torch.device("cpu"))
    expected = (
        images.double() / 255.0 - torch.tensor(mean).double().view(1, 3, 1, 1)
    ) / torch.tensor(std).double().view(1, 3, 1, 1)

    out = normalize(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert out.is_contiguous()
    assert torch.allclose(out.double(), expected, rtol=1e-6, atol=1e-6)

    last = normalize(images, channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last)
    assert not last.is_contiguous()
    assert torch.equal(last, out)


def test_normalizer_single_channel_matches_dataset_statistics(digits) -> None:
    normalize = Normalizer(digits.mean, digits.std, torch.device("cpu"))
    out = normalize(digits.train.images).double()
    # mean/std are the training split's own statistics: the result is standardised
    assert out.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert out.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)

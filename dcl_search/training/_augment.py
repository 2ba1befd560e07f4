"""Whole-batch augmentation and normalisation on the training device (no DataLoader).

Same distribution as torchvision's ``RandomCrop(size, padding=p)`` (zero padding, applied to
the uint8 image before normalisation) followed by ``RandomHorizontalFlip()``, but done for a
whole batch with a few tensor ops, so nothing leaves the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(
    images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Randomly shifted crops of the zero-padded batch, each flipped with probability 1/2."""
    batch, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        span = 2 * padding + 1
        dy = torch.randint(0, span, (batch, 1), generator=generator, device=device)
        dx = torch.randint(0, span, (batch, 1), generator=generator, device=device)
        rows = (dy + torch.arange(height, device=device))[:, None, :, None]
        cols = (dx + torch.arange(width, device=device))[:, None, None, :]
        samples = torch.arange(batch, device=device)[:, None, None, None]
        chans = torch.arange(channels, device=device)[None, :, None, None]
        images = padded[samples, chans, rows, cols]
    if flip:
        mirror = torch.rand(batch, generator=generator, device=device) < 0.5
        images = torch.where(mirror[:, None, None, None], images.flip(3), images)
    return images


class Normalizer:
    """uint8 [0, 255] → float (x/255 − mean) / std per channel, in one fused multiply-add."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        out = torch.addcmul(self.shift, images.float(), self.scale)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

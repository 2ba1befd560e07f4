"""Synthetic label noise for the noisy-label experiments."""

from __future__ import annotations

import math

import torch

from dcl_search._errors import DatasetError


def uniform_label_noise(
    labels: torch.Tensor, fraction: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """A copy of ``labels`` in which ``round(fraction * N)`` samples get a uniformly random label.

    The corrupted samples are drawn uniformly without replacement, and each gets a label drawn
    uniformly from *all* ``num_classes`` classes, so it may keep its true label — the protocol
    of Fang & Lin and Song & Chai ("corrupted with a uniform distribution over the whole
    labels"); the expected share of wrong labels is therefore ``fraction * (1 - 1/C)``.

    The random draws happen on ``generator.device``; the result is on ``labels.device``.
    """
    ok = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not ok or not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
        raise DatasetError(f"the label-noise fraction must lie in [0, 1], got {fraction!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise DatasetError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise DatasetError("labels must be a 1-D tensor")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DatasetError(f"labels must be an integer tensor, got {labels.dtype}")

    noisy = labels.clone()
    count = round(fraction * labels.shape[0])
    if count == 0:
        return noisy
    device = generator.device
    chosen = torch.randperm(labels.shape[0], generator=generator, device=device)[:count]
    new_labels = torch.randint(
        0, num_classes, (count,), generator=generator, device=device, dtype=labels.dtype
    )
    noisy[chosen.to(labels.device)] = new_labels.to(labels.device)
    return noisy

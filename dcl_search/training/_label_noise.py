"""The label-noise setting of a run (a dataclass of the search's settings: no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LabelNoise:
    """Uniform label noise on the training labels: a fixed fraction of them replaced by a class
    drawn uniformly from all classes, drawn once (``fixed``) or anew every epoch (``epoch``, the
    protocol of Fang & Lin, Sec. IV-A)."""

    fraction: float = 0.0
    mode: Literal["epoch", "fixed"] = "epoch"

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"label noise fraction is {self.fraction}, but must be in [0, 1]")
        if self.mode not in ("epoch", "fixed"):
            raise ValueError(f"label noise mode is {self.mode!r}; allowed values: epoch, fixed")

"""What data a search trains on, loaded once per worker process (Ray reuses workers)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcl_search.training import LabelNoise

if TYPE_CHECKING:
    from dcl_search.datasets import DatasetSplits


@dataclass(frozen=True)
class DataSpec:
    dataset: str
    data_dir: str | None = None
    val_fraction: float = 0.1
    label_noise: LabelNoise = LabelNoise()


@functools.lru_cache(maxsize=2)
def cached_data(spec: DataSpec) -> DatasetSplits:
    from dcl_search.datasets import load_dataset  # torch: in the workers, not in the driver

    return load_dataset(spec.dataset, spec.data_dir, val_fraction=spec.val_fraction)

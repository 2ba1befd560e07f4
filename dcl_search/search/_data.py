"""What data a search trains on, loaded once per worker process (Ray reuses workers)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dcl_search.datasets import DatasetSplits, load_dataset
from dcl_search.training import LabelNoise


@dataclass(frozen=True)
class DataSpec:
    dataset: str
    data_dir: str | None = None
    val_fraction: float = 0.1
    label_noise: LabelNoise = LabelNoise()


@functools.lru_cache(maxsize=2)
def cached_data(spec: DataSpec) -> DatasetSplits:
    return load_dataset(spec.dataset, spec.data_dir, val_fraction=spec.val_fraction)

"""Datasets: loaders for standard image datasets, validation splits and label noise.

Loaders are registered in :data:`DATASETS` by name; :func:`load_dataset` returns a
:class:`DatasetSplits` with train/val/test sets and normalisation statistics. Add a dataset
without editing this package::

    @register_dataset("my-set")
    def load_my_set(data_dir: Path) -> RawDataset: ...
"""

from __future__ import annotations

# Imported for their registrations.
from dcl_search.datasets import _cifar, _digits, _imagefolder, _imagenet32, _stl10, _svhn  # noqa: F401
from dcl_search.datasets._base import (
    DATA_ENV_VAR,
    DATASETS,
    DatasetSplits,
    ImageSet,
    RawDataset,
    channel_stats,
    load_dataset,
    register_dataset,
    resolve_data_dir,
)
from dcl_search.datasets._noise import uniform_label_noise
from dcl_search.datasets._split import stratified_split

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "DatasetSplits",
    "ImageSet",
    "RawDataset",
    "channel_stats",
    "load_dataset",
    "register_dataset",
    "resolve_data_dir",
    "stratified_split",
    "uniform_label_noise",
]

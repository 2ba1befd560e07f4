"""Datasets: loaders for standard image datasets, validation splits and label noise.

Loaders are registered in :data:`DATASETS` by name; :func:`load_dataset` returns a
:class:`DatasetSplits` with train/val/test sets and normalisation statistics. Add a dataset
without editing this package::

    @register_dataset("my-set")
    def load_my_set(data_dir: Path) -> RawDataset: ...
"""

from __future__ import annotations

from dcl_search._lazy import lazy_exports
from dcl_search.datasets._registry import (
    DATA_ENV_VAR,
    DATASETS,
    register_dataset,
    resolve_data_dir,
)

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ("DatasetSplits", "ImageSet", "RawDataset", "channel_stats", "load_dataset"), "._base"
        ),
        "uniform_label_noise": "._noise",
        "stratified_split": "._split",
    },
)

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

"""TensorBoard files of a search's trials, as Ray Tune writes them, at a fraction of the cost.

Tune's own logger, on the driver, (1) imports tensorboardX, which imports torch, only for a
type annotation: 2 s before a search's first trial, in a driver that needs no torch; and (2)
writes an event per scalar, each through a multiprocessing queue, then forces the file to
disk, for every result: 2.6 ms of the driver per reported epoch (about 30 numbers), on the
path between a trial's epochs (benchmarks/tensorboard_logger.py). This one writes the same
tags and steps as one event per result (0.33 ms), and lets tensorboardX's thread flush every
30 s as Tune asks it to, and at a trial's end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from ray.tune.logger import TBXLoggerCallback
from ray.tune.logger.tensorboardx import VALID_SUMMARY_TYPES
from ray.tune.result import TIME_TOTAL_S, TIMESTEPS_TOTAL, TRAINING_ITERATION
from ray.tune.utils import flatten_dict

_NOT_LOGGED = ("config", "pid", "timestamp", TIME_TOTAL_S, TRAINING_ITERATION)  # as Tune's
_SCALARS = tuple(VALID_SUMMARY_TYPES)


@contextlib.contextmanager
def _torch_hidden() -> Iterator[None]:
    """``import torch`` fails in this block, unless torch is imported already (then it is free)."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


class TensorBoardLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger (``trial_<id>/events.out.tfevents.*``, tags
    ``ray/tune/<metric>``, hyperparameters at a trial's end), with the costs above removed.
    Being a ``TBXLoggerCallback``, it replaces Tune's default one. Lists and arrays in results
    are not logged: a trial here reports numbers and strings only."""

    def __init__(self) -> None:
        with _torch_hidden():
            super().__init__()

    def __reduce__(self) -> tuple:
        # Tune pickles its callbacks with the search (tuner.pkl): a new one on --resume, rather
        # than tensorboardX's classes, whose unpickling would import torch after all
        return type(self), ()

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        flat = flatten_dict({k: v for k, v in result.items() if k not in _NOT_LOGGED}, "/")
        scalars = {
            f"ray/tune/{key}": value
            for key, value in flat.items()
            if isinstance(value, _SCALARS) and not np.isnan(value)
        }
        from tensorboardX.proto.summary_pb2 import Summary  # imported by __init__ already

        summary = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in scalars.items()])
        self._trial_writer[trial]._get_file_writer().add_summary(summary, step)
        self._trial_result[trial] = scalars  # the hyperparameters' metrics at the trial's end

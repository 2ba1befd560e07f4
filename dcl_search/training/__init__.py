"""Training of knowledge-transfer graphs: recipes, the collaborative trainer, run folders."""

from __future__ import annotations

from dcl_search._lazy import lazy_exports
from dcl_search.training._label_noise import LabelNoise
from dcl_search.training._metrics import Accuracy, EpochMetrics
from dcl_search.training._recipe import (
    AugmentConfig,
    OptimizerConfig,
    Recipe,
    ScheduleConfig,
    learning_rate,
    load_recipe,
    recipe_from_dict,
)

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Normalizer": "._augment",
        "random_crop_flip": "._augment",
        "resolve_frozen_checkpoints": "._pretrain",
        "RunResult": "._run",
        "train_run": "._run",
        **dict.fromkeys(
            ("CollaborativeTrainer", "autocast_dtype", "precision_name", "resolve_device"),
            "._trainer",
        ),
    },
)

__all__ = [
    "Accuracy",
    "AugmentConfig",
    "CollaborativeTrainer",
    "EpochMetrics",
    "LabelNoise",
    "Normalizer",
    "OptimizerConfig",
    "Recipe",
    "RunResult",
    "ScheduleConfig",
    "autocast_dtype",
    "learning_rate",
    "load_recipe",
    "precision_name",
    "random_crop_flip",
    "recipe_from_dict",
    "resolve_device",
    "resolve_frozen_checkpoints",
    "train_run",
]

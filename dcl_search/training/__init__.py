"""Training of knowledge-transfer graphs: recipes, the collaborative trainer, run folders."""

from __future__ import annotations

from dcl_search.training._augment import Normalizer, random_crop_flip
from dcl_search.training._metrics import Accuracy, EpochMetrics
from dcl_search.training._pretrain import resolve_frozen_checkpoints
from dcl_search.training._recipe import (
    AugmentConfig,
    OptimizerConfig,
    Recipe,
    ScheduleConfig,
    learning_rate,
    load_recipe,
    recipe_from_dict,
)
from dcl_search.training._run import RunResult, train_run
from dcl_search.training._trainer import (
    CollaborativeTrainer,
    LabelNoise,
    autocast_dtype,
    precision_name,
    resolve_device,
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

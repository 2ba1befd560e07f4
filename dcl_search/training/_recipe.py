"""Training recipes: the YAML files under ``trainers/``, parsed into frozen dataclasses."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dcl_search._config import from_mapping, load_yaml
from dcl_search._errors import RecipeError


def _check_finite(config: object, names: tuple[str, ...]) -> None:
    # NaN passes every "<= 0" check, and YAML or a user can write "nan" or ".inf"
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value):
            raise RecipeError(f"{name} is {value}, but must be a finite number")


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum (the paper's optimizer); weight decay applies to every parameter."""

    name: Literal["sgd"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        _check_finite(self, ("lr", "momentum", "weight_decay"))
        if self.lr <= 0:
            raise RecipeError(f"lr is {self.lr}, but must be > 0")
        if not 0 <= self.momentum < 1:
            raise RecipeError(f"momentum is {self.momentum}, but must be in [0, 1)")
        if self.weight_decay < 0:
            raise RecipeError(f"weight_decay is {self.weight_decay}, but must be >= 0")
        if self.nesterov and self.momentum == 0:
            raise RecipeError("nesterov needs momentum > 0")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning rate per epoch: ``multistep`` multiplies by gamma at each milestone epoch;
    ``cosine`` anneals to 0 over the run; both may start with a linear warm-up."""

    name: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: tuple[int, ...] = (60, 120, 180)
    gamma: float = 0.1
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(self.milestones) or any(m < 1 for m in self.milestones):
            raise RecipeError(f"milestones {list(self.milestones)} must be increasing epochs >= 1")
        if not 0 < self.gamma <= 1:
            raise RecipeError(f"gamma is {self.gamma}, but must be in (0, 1]")
        if self.warmup_epochs < 0:
            raise RecipeError(f"warmup_epochs is {self.warmup_epochs}, but must be >= 0")


@dataclass(frozen=True)
class AugmentConfig:
    """Pad by ``crop_padding`` pixels (zeros) and crop back at a random offset; random h-flip."""

    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise RecipeError(f"crop_padding is {self.crop_padding}, but must be >= 0")


#: recipe keys that choose how a step runs on the device, never what it computes
HOW_IT_RUNS = ("compile", "cuda_graph", "node_streams")


@dataclass(frozen=True)
class Recipe:
    """How every node of a graph is trained. Defaults are the paper's CIFAR recipe."""

    epochs: int = 200
    batch_size: int = 64
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    temperature: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    eval_batch_size: int = 1024
    # torch.compile of each node's training forward and backward in one of torch's modes
    # ("reduce-overhead" adds CUDA graphs). Off by default: compiling takes seconds to minutes
    # per model and shape, and it gained 1.15x a step on 32x32 CPU images but nothing on the
    # 8x8 digits (benchmarks/train_step.py --compile); unmeasured on a GPU so far
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    # one CUDA graph for the whole training step on CUDA devices (dcl_search/training/
    # _step_graph.py); no effect on the CPU. Off by default until measured on a GPU
    cuda_graph: Literal["off", "on"] = "off"
    # each node's forward (and so its backward) on a CUDA stream of its own, so that the small
    # kernels of different nodes can run side by side; no effect on the CPU. Off until measured
    node_streams: Literal["off", "on"] = "off"

    def __post_init__(self) -> None:
        _check_finite(self, ("temperature",))
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name} is {getattr(self, name)}, but must be >= 1")
        if self.temperature <= 0:
            raise RecipeError(f"temperature is {self.temperature}, but must be > 0")
        if self.cuda_graph == "on" and self.compile != "off":
            raise RecipeError(
                f"cuda_graph: on cannot be combined with compile: {self.compile} (the whole "
                "step's graph replays eager kernels; compile: reduce-overhead graphs each "
                "node instead); set one of them to off"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of every setting, to tell whether a checkpoint matches this recipe.

        ``compile``, ``cuda_graph`` and ``node_streams`` are left out: they change how the
        step runs, not what it computes, and a run may be resumed with or without them."""
        settings = {k: v for k, v in self.to_dict().items() if k not in HOW_IT_RUNS}
        text = json.dumps(settings, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_epochs(self, epochs: int | None) -> Recipe:
        return self if epochs is None else dataclasses.replace(self, epochs=epochs)


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> Recipe:
    return from_mapping(Recipe, data, source, RecipeError)


def load_recipe(path: str | Path) -> Recipe:
    """The recipe in a YAML file; unknown keys and bad values are refused naming the file."""
    return recipe_from_dict(load_yaml(path, RecipeError), str(path))


def learning_rate(recipe: Recipe, epoch: float) -> float:
    """The learning rate at (fractional) ``epoch`` counted from 0, per the recipe's schedule."""
    base, schedule = recipe.optimizer.lr, recipe.schedule
    if schedule.warmup_epochs and epoch < schedule.warmup_epochs:
        return base * (epoch + 1) / (schedule.warmup_epochs + 1)
    if schedule.name == "multistep":
        return base * schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    if schedule.name == "cosine":
        span = max(recipe.epochs - schedule.warmup_epochs, 1)
        return base * 0.5 * (1 + math.cos(math.pi * (epoch - schedule.warmup_epochs) / span))
    return base

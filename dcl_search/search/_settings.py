"""Everything a search needs, saved as ``search.json`` in its folder so ``--resume`` needs nothing else."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dcl_search._errors import DCLSearchError
from dcl_search._plugins import PLUGINS_ENV_VAR, PluginError, add_plugins
from dcl_search.datasets import resolve_data_dir
from dcl_search.search._data import DataSpec
from dcl_search.search._space import SearchSpace, search_space_from_dict
from dcl_search.training import LabelNoise, Recipe, recipe_from_dict

SETTINGS_FILE = "search.json"


class SearchError(DCLSearchError, RuntimeError):
    """A search cannot start, resume or be read."""


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The YAML form of a search space (what ``search_space_from_dict`` reads back)."""
    return {
        "nodes": {"min": space.nodes.min, "max": space.nodes.max},
        "target_model": space.target_model,
        "models": list(space.models),
        "edge_gates": list(space.edge_gates),
        "self_loop_gates": list(space.self_loop_gates),
        "allow_frozen": space.allow_frozen,
        "hyperparameters": {name: dataclasses.asdict(r) for name, r in space.hyperparameters},
    }


@dataclass(frozen=True)
class SearchSettings:
    name: str
    storage: str  # absolute path or URI of the folder that holds the run folder
    space: SearchSpace
    recipe: Recipe
    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.1
    label_noise: LabelNoise = LabelNoise()
    seed: int = 0  # training seed of every trial (equal seeds make trials comparable)
    samples: int = 24
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: int = 0
    grace_period: int = 1
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = 0.0  # None: DEFAULT_GPU_SHARE where the Ray cluster has GPUs
    concurrency: int = 2
    max_failures: int = 2
    status_every: float = 60.0  # seconds without a progress line before a status line; 0: never
    # $DCL_SEARCH_PLUGINS of the search: reading or resuming it loads them again by itself
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rules = {  # option: (holds, what it must be)
            "samples": (self.samples >= 1, ">= 1"),
            # checked here too: a packaged dataset is not loaded before the trials (cli/_search.py)
            "val_fraction": (0 < self.val_fraction < 1, "strictly between 0 and 1"),
            "grace_period": (
                1 <= self.grace_period <= self.recipe.epochs,
                f"in [1, {self.recipe.epochs}] (the recipe's epochs)",
            ),
            "reduction_factor": (self.reduction_factor >= 2, ">= 2"),
            "cpus_per_trial": (self.cpus_per_trial > 0, "> 0"),
            "gpus_per_trial": (self.gpus_per_trial is None or self.gpus_per_trial >= 0, ">= 0"),
            "concurrency": (self.concurrency >= 1, ">= 1"),
            "max_failures": (self.max_failures >= 0, ">= 0"),
            "status_every": (self.status_every >= 0, ">= 0"),
        }
        for name, (holds, rule) in rules.items():
            if not holds:
                raise SearchError(
                    f"--{name.replace('_', '-')} is {getattr(self, name)}, but must be {rule}"
                )

    def absolute(self) -> SearchSettings:
        """The settings with absolute storage and data folders, resolved here.

        Tune runs each trial in the trial's own folder, where ``./data`` (the default data
        folder) or any relative path would name another place.
        """
        return dataclasses.replace(
            self,
            storage=str(Path(self.storage).expanduser().resolve()),
            data_dir=str(resolve_data_dir(self.data_dir).resolve()),
        )

    @property
    def run_dir(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def data(self) -> DataSpec:
        return DataSpec(self.dataset, self.data_dir, self.val_fraction, self.label_noise)

    @property
    def device(self) -> str:
        return "cuda" if (self.gpus_per_trial or 0) > 0 else "cpu"

    @property
    def rungs(self) -> list[int]:
        """The epochs below the last where ASHA may stop a trial: Ray's ASHA puts its rungs at
        grace_period · reduction_factor^k below max_t."""
        rungs, epoch = [], self.grace_period
        while epoch < self.recipe.epochs:
            rungs.append(epoch)
            epoch *= self.reduction_factor
        return rungs

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["space"] = space_to_dict(self.space)
        data["recipe"] = self.recipe.to_dict()
        return data

    def save(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / SETTINGS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @staticmethod
    def made_in(run_dir: str | Path) -> Path:
        """The folder the search in ``run_dir`` was made in, as its ``search.json`` names it
        (``load`` reads the settings from wherever the folder is now)."""
        data = json.loads((Path(run_dir) / SETTINGS_FILE).read_text())
        return Path(data["storage"]) / data["name"]

    @classmethod
    def load(cls, run_dir: str | Path) -> SearchSettings:
        path = Path(run_dir) / SETTINGS_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SearchError(f"{run_dir}: not a search folder (no {SETTINGS_FILE})") from None
        except json.JSONDecodeError as error:
            raise SearchError(f"{path}: not valid JSON ({error.msg})") from None
        data["plugins"] = tuple(data.get("plugins", ()))  # absent before plugins were stored
        try:
            add_plugins(data["plugins"])  # before the space names the plugins' models
        except PluginError as error:
            reason = str(error).removeprefix(f"${PLUGINS_ENV_VAR}: ")
            raise SearchError(f"{path}: plugins: {reason} (edit the list if it moved)") from None
        data["space"] = search_space_from_dict(data["space"], str(path))
        data["recipe"] = recipe_from_dict(data["recipe"], str(path))
        data["label_noise"] = LabelNoise(**data["label_noise"])
        data["storage"] = str(Path(run_dir).resolve().parent)  # the folder may have moved
        return cls(**data)

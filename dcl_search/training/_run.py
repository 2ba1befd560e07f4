"""One training run written to a folder: graph.json, metrics.csv, summary.json, weights/.

The folder is also the unit of resume: ``checkpoint.pt`` is rewritten atomically after every
epoch, and a run started again on the same folder carries on from the last finished epoch.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import torch

from dcl_search._errors import TrainingError
from dcl_search._files import write_text_atomic
from dcl_search.datasets import DatasetSplits
from dcl_search.graphs import graph_hash, write_graph
from dcl_search.training._metrics import Accuracy, EpochMetrics
from dcl_search.training._recipe import Recipe
from dcl_search.training._trainer import CollaborativeTrainer, LabelNoise, precision_name

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
GRAPH = "graph.json"
WEIGHTS = "weights"


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    val: Accuracy
    test: Accuracy
    history: tuple[EpochMetrics, ...]
    summary: dict[str, Any]
    resumed_from_epoch: int


def write_metrics(history: list[EpochMetrics], path: Path) -> None:
    write_text_atomic(path, pd.DataFrame([m.row() for m in history]).to_csv(index=False))


def git_revision() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def environment() -> dict[str, str]:
    from importlib.metadata import version

    import networkx

    import dcl_search

    return {
        "dcl_search": dcl_search.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        # its version only: importing torchvision imports torch._dynamo (its ops do), 1.1-1.5 s
        "torchvision": version("torchvision"),
        "networkx": networkx.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }


def train_run(
    graph: nx.DiGraph,
    data: DatasetSplits,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    seed: int = 0,
    label_noise: LabelNoise | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_start: Callable[[CollaborativeTrainer], None] | None = None,
) -> RunResult:
    """Trains ``graph`` into ``out_dir`` (resuming from its checkpoint if there is one).

    Frozen nodes must already carry checkpoints (``resolve_frozen_checkpoints``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = CollaborativeTrainer(
        graph, data, recipe, device=device, seed=seed, label_noise=label_noise
    )
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
    resumed_from = trainer.epoch
    write_graph(graph, out / GRAPH)
    if on_start is not None:
        on_start(trainer)
    for metrics in trainer.train_epochs():
        trainer.save_checkpoint(checkpoint)
        write_metrics(trainer.history, out / METRICS)
        if on_epoch is not None:
            on_epoch(metrics)
    if not trainer.history:
        raise TrainingError(f"{out}: no epoch was trained")
    write_metrics(trainer.history, out / METRICS)  # complete even if a crash cut the last write
    started = time.perf_counter()
    val, test = trainer.evaluate("val"), trainer.evaluate("test")
    trainer.save_weights(out / WEIGHTS)
    summary = {
        "graph_hash": graph_hash(graph),
        "graph": GRAPH,
        "dataset": {
            "name": data.name,
            "num_classes": data.num_classes,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
        },
        "recipe": recipe.to_dict(),
        "seed": seed,
        "label_noise": {"fraction": trainer.label_noise.fraction, "mode": trainer.label_noise.mode},
        "device": str(trainer.device),
        # what the recipe's precision resolved to here (auto depends on the machine)
        "precision": precision_name(trainer.autocast_dtype),
        # steps of this process replayed as one CUDA graph (cuda_graph: on, on CUDA only)
        "graphed_steps": trainer.graphed_steps,
        "epochs": trainer.epoch,
        "val": val.row(),
        "test": test.row(),
        "wall_time_s": round(trainer.elapsed + time.perf_counter() - started, 3),
        "environment": environment(),
    }
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return RunResult(out, val, test, tuple(trainer.history), summary, resumed_from)

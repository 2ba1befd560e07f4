"""Checkpoints for frozen nodes: given by the graph, or made once by a cached pre-training run.

A frozen node is a pretrained teacher (the slides' "ResNet110*"): trained independently on the
same training split, with the same recipe. Such runs are keyed by everything that shapes them
and cached, so a search pays for each teacher once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import torch

from dcl_search._errors import GraphError
from dcl_search.datasets import DatasetSplits
from dcl_search.graphs import independent
from dcl_search.training._checkpoint import atomic_torch_save
from dcl_search.training._recipe import Recipe
from dcl_search.training._trainer import CollaborativeTrainer, LabelNoise

PRETRAIN_SEED = 0  # one teacher per (model, data, recipe), shared by every graph and seed


def data_fingerprint(data: DatasetSplits) -> str:
    """A short hash of the training split (labels and a sample of pixels)."""
    digest = hashlib.sha256()
    digest.update(f"{data.name}:{data.num_classes}:{tuple(data.train.images.shape)}".encode())
    digest.update(data.train.labels.numpy().tobytes())
    step = max(1, len(data.train) // 256)
    digest.update(data.train.images[::step].numpy().tobytes())
    return digest.hexdigest()[:16]


def pretrain_path(
    cache_dir: Path, model: str, data: DatasetSplits, recipe: Recipe, noise: object
) -> Path:
    key = json.dumps([model, data_fingerprint(data), recipe.digest(), PRETRAIN_SEED, repr(noise)])
    return cache_dir / f"{data.name}-{model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


def resolve_frozen_checkpoints(
    graph: nx.DiGraph,
    data: DatasetSplits,
    recipe: Recipe,
    *,
    cache_dir: Path,
    graph_dir: Path | None = None,
    device: str | torch.device = "cpu",
    label_noise: LabelNoise | None = None,
    log: Callable[[str], None] = print,
) -> nx.DiGraph:
    """A copy of ``graph`` whose frozen nodes all carry an absolute, existing checkpoint path.

    Relative checkpoint paths are read relative to ``graph_dir`` (the graph file's folder).
    """
    resolved = graph.copy()
    for node, attrs in resolved.nodes(data=True):
        if not attrs.get("frozen"):
            continue
        if attrs.get("checkpoint"):
            path = Path(attrs["checkpoint"]).expanduser()
            path = path if path.is_absolute() or graph_dir is None else graph_dir / path
            if not path.is_file():
                raise GraphError(f"node {node}: checkpoint {path} does not exist")
            attrs["checkpoint"] = str(path.resolve())
            continue
        path = pretrain_path(cache_dir, attrs["model"], data, recipe, label_noise)
        if not path.is_file():
            log(
                f"pre-training frozen node {node} ({attrs['model']}) on {data.name}; cached as {path}"
            )
            teacher = CollaborativeTrainer(
                independent(attrs["model"]),
                data,
                recipe,
                device=device,
                seed=PRETRAIN_SEED,
                label_noise=label_noise,
            )
            for _ in teacher.train_epochs():
                pass
            atomic_torch_save(teacher.models[0].state_dict(), path)
        attrs["checkpoint"] = str(path.resolve())
    return resolved

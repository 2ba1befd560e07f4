"""Fixtures of the trainer tests."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pytest
import torch

from dcl_search.graphs import validate_graph
from dcl_search.training import CollaborativeTrainer


@pytest.fixture
def per_parameter_sgd() -> Callable:
    """``make(trainer)``: copies of the trainer's parameters and a plain per-parameter SGD
    (``foreach=False``, not fused) over them with the trainer's settings, to compare its fast
    optimizer against."""

    def make(trainer: CollaborativeTrainer) -> tuple[list[torch.Tensor], torch.optim.SGD]:
        copies = [
            p.detach().clone().requires_grad_() for m in trainer.models for p in m.parameters()
        ]
        defaults = trainer.optimizer.defaults
        plain = torch.optim.SGD(
            copies,
            lr=defaults["lr"],
            momentum=defaults["momentum"],
            nesterov=defaults["nesterov"],
            weight_decay=defaults["weight_decay"],
            foreach=False,
        )
        return copies, plain

    return make


@pytest.fixture
def gated_graph() -> nx.DiGraph:
    """Three nodes with every gate whose loss depends on the step (linear, negative_linear)
    or on the labels (correct): what a graphed step must refill before each replay."""
    graph = nx.DiGraph()
    for node, model in enumerate(("tiny_cnn", "mlp", "tiny_cnn")):
        graph.add_node(node, model=model, frozen=False)
        graph.add_edge(node, node, gate="through")
    graph.add_edge(1, 0, gate="linear")
    graph.add_edge(2, 0, gate="correct")
    graph.add_edge(0, 1, gate="negative_linear")
    graph.add_edge(0, 2, gate="through")
    return validate_graph(graph)

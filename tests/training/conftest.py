"""Fixtures of the trainer tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

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

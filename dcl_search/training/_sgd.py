"""torch.optim.SGD without the wrappers that import ``torch._dynamo``.

torch wraps an optimizer's ``step`` (graph breaks for torch.compile) and its ``add_param_group``,
``zero_grad``, ``state_dict`` and ``load_state_dict`` (``torch._disable_dynamo``); each wrapper
imports ``torch._dynamo`` at its first call. That import costs 1.1-1.5 CPU-s and 150 MB in every
process: each of a search's Ray workers paid it in its first trial's set-up, on the two busy
cores of the CPU demo, and each worker kept the memory. Nothing here runs an optimizer under
torch.compile (the recipe's ``compile`` compiles each node's forward and backward, never the
step), so the wrappers have nothing to do.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

# the functions torch's wrappers wrap (``__wrapped__``, followed by inspect.unwrap)
_ADD_PARAM_GROUP = inspect.unwrap(torch.optim.Optimizer.add_param_group)
_ZERO_GRAD = inspect.unwrap(torch.optim.Optimizer.zero_grad)
_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.state_dict)
_LOAD_STATE_DICT = inspect.unwrap(torch.optim.Optimizer.load_state_dict)
_STEP = inspect.unwrap(torch.optim.SGD.step)


class EagerSGD(torch.optim.SGD):
    """torch.optim.SGD running torch's own code for every method: the same update, state and
    state_dict format, so its checkpoints load into torch.optim.SGD and back. Step hooks and
    the profiler's step label still apply (torch adds them around this class's ``step``).
    ``differentiable=True`` is not supported."""

    def __init__(self, params: Any, **options: Any) -> None:
        if options.get("differentiable"):
            raise ValueError("EagerSGD does not support differentiable=True; use torch.optim.SGD")
        super().__init__(params, **options)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _ZERO_GRAD(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _LOAD_STATE_DICT(self, state_dict)

    @torch.no_grad()  # what the unwrapped step's wrapper set for a non-differentiable optimizer
    def step(self, closure: Any = None) -> Any:
        return _STEP(self, closure)

"""Atomic saving and frozen-node weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dcl_search._errors import TrainingError
from dcl_search._files import write_atomic


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` through a temporary file and a rename, so readers never see half a file."""
    return write_atomic(path, lambda handle: torch.save(obj, handle))


def load_frozen_weights(model: torch.nn.Module, path: Path, node: int) -> None:
    """Loads a state_dict saved by ``dcl-search train`` (weights/node{i}.pt) into a frozen node."""
    if not path.is_file():
        raise TrainingError(f"node {node}: checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(
            f"node {node}: cannot load checkpoint {path} into this model ({first})"
        ) from None

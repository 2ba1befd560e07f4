"""Bytes a piece of PyTorch code moves through memory, counted op by op.

A model of memory traffic, not a hardware reading: every ATen op is taken to read each tensor
input once and write each output once (a kernel without fusion and without cache reuse). Views
(``view``, ``t``, ``expand`` ...) move nothing; an in-place op counts its target as read and
written. Dividing images/s × these bytes by the device's bandwidth gives the share of it the
code would use if every op streamed its tensors from memory, a bound to compare against.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the elements a tensor view reaches: broadcast (stride 0) dimensions count once."""
    elements = 1
    for size, stride in zip(tensor.shape, tensor.stride(), strict=True):
        if stride != 0:
            elements *= size
    return elements * tensor.element_size()


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [leaf for leaf in tree_flatten(tree)[0] if isinstance(leaf, torch.Tensor)]


class ByteCounter(TorchDispatchMode):
    """``with ByteCounter() as counter: ...`` then ``counter.total`` (bytes) and ``counter.by_op``."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            moved = sum(tensor_bytes(t) for t in _tensors((args, kwargs)))
            moved += sum(tensor_bytes(t) for t in _tensors(out))
            name = func.overloadpacket.__name__
            self.by_op[name] = self.by_op.get(name, 0) + moved
            self.total += moved
        return out

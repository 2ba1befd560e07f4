"""Gates of a knowledge-transfer graph (Minami et al., "Knowledge Transfer Graph for Deep
Collaborative Learning", ACCV 2020).

A gate turns an edge's per-sample loss vector ℓ (length N, the batch) into the scalar that
enters the target node's loss, L_t = Σ_s G_{s,t}(ℓ_{s,t}). With k the training iteration so
far and k_end the iterations of the whole run:

    through          G(ℓ) = mean(ℓ)
    cutoff           G(ℓ) = 0                       (ℓ is never computed)
    linear           G(ℓ) = (k / k_end) · mean(ℓ)
    negative_linear  G(ℓ) = (1 − k / k_end) · mean(ℓ)
    correct          G(ℓ) = (1/N) Σ_n ℓ_n · [argmax p_s(x_n) = y_n]; equals through on a self-loop

Users add a gate with ``@register_gate("name")`` on a :class:`Gate` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from dcl_search.gates._registry import GATES, register_gate


@dataclass(frozen=True)
class GateContext:
    """What a gate may look at besides the per-sample loss.

    ``progress`` is k / k_end, a float or a 0-d tensor (a tensor keeps the training step free
    of host values). ``source_correct`` is a bool vector, True where the source node's
    prediction equals the label; it is None on a self-loop, whose source is the label itself.
    """

    progress: float | torch.Tensor
    source_correct: torch.Tensor | None = None


class Gate(ABC):
    """Maps an edge's per-sample loss vector to the scalar it adds to the target's loss."""

    #: False only for gates that are identically zero: the trainer then skips the edge entirely.
    computes_loss: ClassVar[bool] = True
    #: True if the gate reads ``GateContext.source_correct`` (so the trainer computes it).
    needs_source_correct: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        """The edge's contribution to the target node's loss (a 0-d tensor)."""


def build_gate(name: str) -> Gate:
    """An instance of the gate registered as ``name``."""
    return GATES.get(name)()


@register_gate("through")
class ThroughGate(Gate):
    """G(ℓ) = mean(ℓ): the edge always teaches."""

    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        return per_sample_loss.mean()


@register_gate("cutoff")
class CutoffGate(Gate):
    """G(ℓ) = 0: the edge never teaches, and its loss is never computed."""

    computes_loss = False

    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        return per_sample_loss.new_zeros(())


@register_gate("linear")
class LinearGate(Gate):
    """G(ℓ) = (k / k_end) · mean(ℓ): teaching ramps up from 0 to 1 over the whole run."""

    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        return context.progress * per_sample_loss.mean()


@register_gate("negative_linear")
class NegativeLinearGate(Gate):
    """G(ℓ) = (1 − k / k_end) · mean(ℓ): teaching ramps down from 1 to 0 over the whole run."""

    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        return (1 - context.progress) * per_sample_loss.mean()


@register_gate("correct")
class CorrectGate(Gate):
    """G(ℓ) = (1/N) Σ_n ℓ_n · [argmax p_s(x_n) = y_n]: teach only on samples the source gets right.

    Divides by the batch size N, not by the number of correct samples, as the reference
    implementation does. On a self-loop (no source network) it equals through.
    """

    needs_source_correct = True

    def __call__(self, per_sample_loss: torch.Tensor, context: GateContext) -> torch.Tensor:
        if context.source_correct is None:
            return per_sample_loss.mean()
        mask = context.source_correct.to(per_sample_loss.dtype)
        return (per_sample_loss * mask).mean()

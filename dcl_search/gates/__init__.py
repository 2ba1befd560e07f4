"""Gates and losses of knowledge-transfer graphs."""

from __future__ import annotations

from dcl_search.gates._gates import (
    GATES,
    CorrectGate,
    CutoffGate,
    Gate,
    GateContext,
    LinearGate,
    NegativeLinearGate,
    ThroughGate,
    build_gate,
    register_gate,
)
from dcl_search.gates._losses import GraphLoss, kl_loss, label_loss

__all__ = [
    "GATES",
    "CorrectGate",
    "CutoffGate",
    "Gate",
    "GateContext",
    "GraphLoss",
    "LinearGate",
    "NegativeLinearGate",
    "ThroughGate",
    "build_gate",
    "kl_loss",
    "label_loss",
    "register_gate",
]

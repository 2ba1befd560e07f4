"""Gates and losses of knowledge-transfer graphs."""

from __future__ import annotations

from dcl_search._lazy import lazy_exports
from dcl_search.gates._registry import GATES, register_gate

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            (
                "CorrectGate",
                "CutoffGate",
                "Gate",
                "GateContext",
                "LinearGate",
                "NegativeLinearGate",
                "ThroughGate",
                "build_gate",
            ),
            "._gates",
        ),
        **dict.fromkeys(("GraphLoss", "kl_loss", "label_loss"), "._losses"),
    },
)

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

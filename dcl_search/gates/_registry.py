"""The gate registry: names known without importing torch (see :mod:`dcl_search._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcl_search._registry import Registry

if TYPE_CHECKING:
    from dcl_search.gates._gates import Gate

GATES: Registry[type[Gate]] = Registry(
    "gate",
    builtin={
        "dcl_search.gates._gates": ("through", "cutoff", "linear", "negative_linear", "correct")
    },
)
register_gate = GATES.register

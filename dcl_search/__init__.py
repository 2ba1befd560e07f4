"""dcl-search: search knowledge-transfer graphs for deep collaborative learning."""

from __future__ import annotations

__version__ = "0.1.0"

from __future__ import annotations

from dcl_search.cli import console

console()

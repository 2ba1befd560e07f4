from __future__ import annotations

import sys

from dcl_search.cli import main

sys.exit(main())

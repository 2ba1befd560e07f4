"""Checking that a dataset loads, in a child process, while the caller goes on.

A search's driver never trains, so it imports no torch (its trials do, in Ray's workers), but
a missing or malformed dataset should be one line before any trial, not a failed trial. A
child process loads the data on another core (about 2 s: torch and the loader) while the
driver starts Ray (benchmarks/README.md, "Search overhead").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dcl_search._errors import DCLSearchError

_USER_ERROR = 2  # the child's exit status for a user's mistake: its message is one line


class DatasetCheck:
    """Loads ``dataset`` as :func:`~dcl_search.datasets.load_dataset` does, in a child process
    started at once; :meth:`result` waits for it and raises what it raised."""

    def __init__(self, dataset: str, data_dir: str | Path | None, val_fraction: float) -> None:
        self.dataset = dataset
        arguments = json.dumps([dataset, None if data_dir is None else str(data_dir), val_fraction])
        self._child = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import _child; _child()", arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> None:
        """Returns once the data loaded; else raises :class:`DCLSearchError` with the loader's
        message (a user's mistake), or RuntimeError with the child's traceback."""
        _, errors = self._child.communicate()
        status = self._child.returncode
        if status == _USER_ERROR:
            raise DCLSearchError(errors.strip())
        if status:
            raise RuntimeError(
                f"checking dataset {self.dataset!r} failed (status {status}):\n{errors}"
            )

    def cancel(self) -> None:
        """Ends the child if it still runs (the caller failed, or Ctrl-C)."""
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()


def _child() -> None:
    from dcl_search.datasets import load_dataset

    dataset, data_dir, val_fraction = json.loads(sys.argv[1])
    try:
        load_dataset(dataset, data_dir, val_fraction=val_fraction)
    except (DCLSearchError, ValueError) as error:
        print(error, file=sys.stderr)
        sys.exit(_USER_ERROR)

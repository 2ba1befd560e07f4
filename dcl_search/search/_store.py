"""Never pay twice: one folder per (canonical graph, recipe) shared by every trial of a search.

``<run>/graphs/<key>/`` holds the canonical ``graph.json``, the trainer's ``checkpoint.pt``
(whose history is every finished epoch), ``rows.json`` (those epochs as metric rows, for
cheap polling) and, while a trial trains it, ``lock`` (the owner's trial id). A trial whose
graph is already there replays the stored epochs instead of training them, and continues
from the checkpoint if it needs more. The lock is taken with O_EXCL, which is atomic on local
and NFS file systems, and released by the driver when the owner ends, since ASHA stops a
trial by killing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dcl_search._files import write_text_atomic

STORE = "graphs"  # the store's folder in a run folder
LOCK = "lock"
ROWS = "rows.json"
CHECKPOINT = "checkpoint.pt"
GRAPH = "graph.json"


class GraphStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def of_run(cls, run_dir: str | Path) -> GraphStore:
        """The store of the search in ``run_dir``."""
        return cls(Path(run_dir) / STORE)

    def folder(self, key: str) -> Path:
        return self.root / key

    def rows(self, key: str) -> list[dict[str, Any]]:
        path = self.folder(key) / ROWS
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return []

    def write_rows(self, key: str, rows: list[dict[str, Any]]) -> None:
        write_text_atomic(self.folder(key) / ROWS, json.dumps(rows))

    def checkpoint(self, key: str) -> Path:
        return self.folder(key) / CHECKPOINT

    def acquire(self, key: str, owner: str) -> bool:
        """True if ``owner`` now holds (or already held) the right to train ``key``."""
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.owner(key) == owner
        with os.fdopen(fd, "w") as handle:
            handle.write(owner)
        return True

    def owner(self, key: str) -> str | None:
        try:
            return (self.folder(key) / LOCK).read_text()
        except FileNotFoundError:
            return None

    def release(self, key: str, owner: str) -> None:
        if self.owner(key) == owner:
            (self.folder(key) / LOCK).unlink(missing_ok=True)

    def release_all_of(self, owner: str) -> None:
        """Frees every lock ``owner`` holds (the driver calls it when a trial ends)."""
        if self.root.is_dir():
            for lock in self.root.glob(f"*/{LOCK}"):
                self.release(lock.parent.name, owner)

    def release_all(self) -> None:
        """Frees every lock: at the start of a search (or resume) no trial is running."""
        if self.root.is_dir():
            for lock in self.root.glob(f"*/{LOCK}"):
                lock.unlink(missing_ok=True)


ENDED = "ended_trials.jsonl"


def record_ended(run_dir: str | Path, trial_id: str, result: dict[str, Any]) -> None:
    """Durably notes that a trial ended, with its last result (Tune's own result.json may
    still be unflushed when a driver is killed)."""
    flat = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}
    with open(Path(run_dir) / ENDED, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"trial": trial_id, "result": flat}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _ledger_bytes(run_dir: str | Path) -> bytes:
    try:
        return (Path(run_dir) / ENDED).read_bytes()
    except FileNotFoundError:
        return b""


def _ledger_lines(run_dir: str | Path) -> list[str]:
    return _ledger_bytes(run_dir).decode("utf-8").splitlines()


def _furthest_ends(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    ended: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the driver was killed
            continue
        trial, result = entry["trial"], entry["result"]
        if result.get("epoch", 0) >= ended.get(trial, {}).get("epoch", 0):
            ended[trial] = result
    return ended


def ended_results(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Trial id → its last result, for every trial the driver saw end; of several ends, the one
    that got furthest (the later on a tie).

    A trial that ended after Tune's last saved state and before a killed driver ends again on
    ``--resume`` with the result noted here; a failed trial retried on ``--resume`` goes on
    from where it failed."""
    return _furthest_ends(_ledger_lines(run_dir))


def ended_unknown(run_dir: str | Path, known: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Trial id → last result of the ended trials not among ``known``: on ``--resume``, those
    that ended after Tune's last save before a killed driver, which neither Tune nor its
    searcher knows."""
    known = set(known)
    return {trial: result for trial, result in ended_results(run_dir).items() if trial not in known}


def ended_result(run_dir: str | Path, trial_id: str) -> dict[str, Any] | None:
    """``ended_results(run_dir).get(trial_id)``, parsing only the lines that name the trial:
    every trial's start asks, and need not parse the ends of all the trials before it."""
    named = f'"trial": {json.dumps(trial_id)}'  # as record_ended writes it
    ledger = _ledger_bytes(run_dir)
    # every new trial: one search of the bytes, 0.4 ms instead of 2.4 ms at 1,000 ended trials
    if named.encode() not in ledger:
        return None
    lines = ledger.decode("utf-8").splitlines()
    return _furthest_ends(line for line in lines if named in line).get(trial_id)

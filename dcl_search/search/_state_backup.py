"""A complete copy of Tune's experiment state, so a driver killed mid-save can still resume.

Tune rewrites ``experiment_state-<session>.json`` and ``searcher-state-<session>.pkl`` in
place; a SIGKILL during that write leaves an empty or torn file, and ``Tuner.restore`` then
logs an error and quietly starts the search over. Tune saves at the end of a step and calls
``on_step_end`` right after, so a copy taken there is always of a complete save; it is made
in a temporary folder and renamed into place, so the backup itself is never torn.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

BACKUP = ".tune-state-backup"
PROGRESS = "progress.json"  # what a trial checkpoint holds (see _trial.py)
PATTERNS = ("experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json")


def _latest_state(run_dir: Path) -> Path | None:
    # the newest session by name (a timestamp), as Tune itself picks it; mtimes change on copies
    states = list(run_dir.glob(PATTERNS[0]))
    return max(states, key=lambda p: p.name) if states else None


def _session_files(run_dir: Path, state: Path) -> list[Path]:
    session = state.name.removeprefix("experiment_state-").removesuffix(".json")
    return [p for pattern in PATTERNS for p in run_dir.glob(pattern.replace("*", session))]


def back_up_state(run_dir: Path, state: Path, saved_at: int | None) -> int | None:
    """Copies the experiment state ``state`` and its session's other files into
    ``<run>/.tune-state-backup/`` unless it is the one saved at ``saved_at`` (an mtime);
    returns the mtime of the state now backed up.
    """
    if state.stat().st_mtime_ns == saved_at:
        return saved_at
    saved_at = state.stat().st_mtime_ns
    fresh = run_dir / f"{BACKUP}.tmp"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    for path in _session_files(run_dir, state):
        shutil.copy2(path, fresh / path.name)
    old = run_dir / f"{BACKUP}.old"
    shutil.rmtree(old, ignore_errors=True)
    if (run_dir / BACKUP).exists():
        (run_dir / BACKUP).rename(old)
    fresh.rename(run_dir / BACKUP)
    shutil.rmtree(old, ignore_errors=True)
    return saved_at


class SessionBackup:
    """Backs up the state of the Tune session running in this process after each of its saves
    (the driver's Tune callback calls :meth:`after_step` after every step; Ray-free here, so
    that reading a search's results does not import Ray).

    The session's state file is looked for in the run folder only until it appears, then
    watched alone: the folder holds a folder per trial, and looking through it at every step
    of the driver's loop cost 5% of the driver's time at a thousand trials, and grew with
    every trial (benchmarks/search_scaling.py).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # a resumed search's earlier sessions: Tune names this one's file after its start
        self.earlier = {path.name for path in run_dir.glob(PATTERNS[0])}
        self.state: Path | None = None
        self.saved_at: int | None = None

    def after_step(self) -> None:
        if self.state is None:
            latest = _latest_state(self.run_dir)
            if latest is None or latest.name in self.earlier:
                return  # this session has not saved yet
            self.state = latest
        try:
            self.saved_at = back_up_state(self.run_dir, self.state, self.saved_at)
        except FileNotFoundError:  # Tune rewrites its files in place; if one went, look again
            self.state = None


def _readable(path: Path) -> bool:
    try:
        if path.name.startswith("experiment_state-"):
            json.loads(path.read_text())
        else:  # searcher-state-*.pkl, and search_gen_state-*.json, which is a pickle too
            with path.open("rb") as handle:
                pickle.load(handle)
    except (
        Exception
    ):  # empty, torn, or from an unreadable version: all mean "cannot resume from it"
        return False
    return True


def _refill_checkpoints(run_dir: Path) -> None:
    """In a search started while dcl-search had Tune keep one checkpoint per trial (a resumed
    search keeps its Tune settings), the backed-up state may name a checkpoint that Ray
    deleted after the next report. Ours hold only ``progress.json``; a rebuilt one says
    ``index + 1`` epochs, at most what the deleted one said, since not every epoch has one, so
    the resumed trial at worst reports some epochs again, replayed from the graph store."""
    for trial_dir in run_dir.glob("trial_*"):
        kept = sorted(trial_dir.glob("checkpoint_*"))
        if not kept:
            continue
        latest = int(kept[-1].name.removeprefix("checkpoint_"))
        for index in range(latest):
            folder = trial_dir / f"checkpoint_{index:06d}"
            if not folder.exists():
                folder.mkdir()
                (folder / PROGRESS).write_text(json.dumps({"reported": index + 1}))


def repair_state(run_dir: Path) -> bool:
    """Puts the backup back if the latest saved state is torn; True if it did."""
    _refill_checkpoints(run_dir)  # even an intact save may name a checkpoint deleted just after
    state = _latest_state(run_dir)
    if state is None or all(_readable(p) for p in _session_files(run_dir, state)):
        return False
    for folder in (run_dir / BACKUP, run_dir / f"{BACKUP}.old"):
        if folder.is_dir() and any(folder.iterdir()):
            for path in folder.iterdir():
                shutil.copy2(path, run_dir / path.name)
            if state.name not in {p.name for p in folder.iterdir()}:
                state.unlink()  # a torn session with no copy: fall back to the backed-up one
            return True
    return False


def known_trials(run_dir: Path) -> set[str] | None:
    """Ids of the trials in Tune's latest saved state (None if it cannot be read)."""
    state = _latest_state(run_dir)
    try:
        data = json.loads(state.read_text()) if state else None
        return {json.loads(entry[0])["trial_id"] for entry in data["trial_data"]} if data else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None

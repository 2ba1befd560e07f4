"""The driver's progress lines: counts and best over the ended trials, a resumed search's too."""

from __future__ import annotations

import re
from pathlib import Path

from ray.tune.experiment import Trial

from dcl_search.search import load_search_space
from dcl_search.search._driver import _callbacks
from dcl_search.search._settings import SearchSettings
from dcl_search.search._store import record_ended
from dcl_search.training import Recipe

LINE = re.compile(r"\[(\d+)/10\] (\w+) (done|stopped|FAILED) after .*; best (-|\d+\.\d\d%)")


def _trial(status: str, result: dict) -> Trial:
    trial = Trial("run_trial", stub=True)
    trial.set_status(status)
    trial.run_metadata.last_result = {"trial_id": trial.trial_id, **result}
    return trial


def test_lines_count_every_ended_trial_once_with_the_best_so_far(tmp_path: Path) -> None:
    settings = SearchSettings(
        name="run",
        storage=str(tmp_path),
        space=load_search_space("demo"),
        recipe=Recipe(epochs=4),
        samples=10,
    )
    settings.run_dir.mkdir(parents=True)
    lines: list[str] = []
    progress = next(c for c in _callbacks(settings, lines.append) if type(c).__name__ == "Progress")
    # before this driver: one ended trial in Tune's saved state, one only in the ledger (it
    # ended after the last save of a killed driver), one running again
    before = _trial(Trial.TERMINATED, {"epoch": 4, "acc_node0": 0.5})
    record_ended(settings.run_dir, "lost", {"trial_id": "lost", "epoch": 2, "acc_node0": 0.7})
    running = _trial(Trial.RUNNING, {"epoch": 1, "acc_node0": 0.9})
    trials = [before, running]

    # Tune marks a completed trial TERMINATED after the callback, a failed one before
    progress.on_trial_complete(0, trials, running)
    running.set_status(Trial.TERMINATED)
    failed = _trial(Trial.ERROR, {})
    trials.append(failed)
    progress.on_trial_error(0, trials, failed)
    late = _trial(Trial.RUNNING, {"epoch": 4, "acc_node0": 0.95})
    trials.append(late)
    progress.on_trial_complete(0, trials, late)
    progress.on_trial_complete(0, trials, late)  # twice: still one end

    shown = [LINE.match(line).groups() for line in lines]
    assert shown == [
        ("3", running.trial_id, "stopped", "90.00%"),
        ("4", failed.trial_id, "FAILED", "90.00%"),
        ("5", late.trial_id, "done", "95.00%"),
        ("5", late.trial_id, "done", "95.00%"),
    ]

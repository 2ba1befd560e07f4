"""The driver's progress lines: counts and best over the ended trials, a resumed search's too."""

from __future__ import annotations

import re
import threading
import time
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


def _settings(tmp_path: Path, samples: int) -> SearchSettings:
    settings = SearchSettings(
        name="run",
        storage=str(tmp_path),
        space=load_search_space("demo"),
        recipe=Recipe(epochs=4),
        samples=samples,
    )
    settings.run_dir.mkdir(parents=True)
    return settings


def test_lines_count_every_ended_trial_once_with_the_best_so_far(tmp_path: Path) -> None:
    settings = _settings(tmp_path, samples=10)
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


def test_export_warms_up_once_every_sample_started_and_a_slot_idles(
    tmp_path: Path, monkeypatch
) -> None:
    """The drawing modules load in a thread at the first trial end after the last sample
    started (a slot then idles for good), once, not before."""
    import dcl_search.search._driver as driver

    warmed = threading.Event()
    calls: list[str] = []

    def fake_warm() -> None:
        calls.append(threading.current_thread().name)
        warmed.set()

    monkeypatch.setattr(driver, "_warm_export", fake_warm)
    settings = _settings(tmp_path, samples=3)
    warm = next(c for c in _callbacks(settings, print) if type(c).__name__ == "WarmExport")
    trials = [_trial(Trial.RUNNING, {"epoch": 1}) for _ in range(2)]
    warm.on_trial_complete(0, trials, trials[0])
    warm.on_trial_error(0, trials, trials[1])
    assert not warmed.wait(0.2) and calls == []  # a third sample is still to come
    trials.append(_trial(Trial.RUNNING, {"epoch": 1}))
    warm.on_trial_complete(0, trials, trials[2])
    warm.on_trial_error(0, trials, trials[1])
    assert warmed.wait(5)
    time.sleep(0.2)
    assert calls == ["warm-export"]

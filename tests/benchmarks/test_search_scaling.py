"""benchmarks/search_scaling.py's windows of trials, on hand-built one-epoch trial rows."""

from __future__ import annotations

import pytest
import search_scaling as scaling


def _trial(pid: int, started: float, reported: float, seconds: float, trained: int = 1) -> list:
    row = {
        "pid": pid,
        "started_at": started,
        "reported_at": reported,
        "seconds": seconds,
        "trained_epochs": trained,
    }
    return [row]


def test_windows_leave_out_each_workers_first_trial_and_split_slot_time() -> None:
    # 2 slots. Workers 1 and 2 warm up in their first trials (0..3 s), then trials start at
    # 3, 3, 4, 4 (window 1: epochs of 0.5 s) and 5, 5.5, 7, 7.5 (window 2: 0.25 s, one of them
    # a graph replayed from the store, no training); the last report is at 9.
    trials = [
        _trial(1, 0.0, 3.0, 0.5),
        _trial(2, 0.0, 3.0, 0.5),
        _trial(1, 3.0, 3.8, 0.5),
        _trial(2, 3.0, 3.9, 0.5),
        _trial(1, 4.0, 4.8, 0.5),
        _trial(2, 4.0, 4.9, 0.5),
        _trial(1, 5.0, 5.4, 0.25),
        _trial(2, 5.5, 6.0, 0.25, trained=0),
        _trial(1, 7.0, 8.0, 0.25),
        _trial(2, 7.5, 9.0, 0.25),
    ]
    first, second = scaling.windows(trials, slots=2, count=2)
    assert first["trials"] == "1-4" and second["trials"] == "5-8"
    # window 1 spans 3..5 s (the next window's first start): 4 slot-s over 4 trials
    assert first["slot_seconds_per_trial"] == pytest.approx(1.0)
    assert first["training_per_trial"] == pytest.approx(0.5)
    assert first["machinery_per_trial"] == pytest.approx(0.5)
    assert first["reused_graphs"] == 0
    # window 2 spans 5..9 s: 8 slot-s; three trained epochs of 0.25 s
    assert second["slot_seconds_per_trial"] == pytest.approx(2.0)
    assert second["training_per_trial"] == pytest.approx(0.75 / 4)
    assert second["machinery_per_trial"] == pytest.approx((8 - 0.75) / 4)
    assert second["reused_graphs"] == 1


def test_trials_past_the_last_whole_window_are_left_out() -> None:
    trials = [_trial(1, float(i), i + 0.5, 0.25) for i in range(6)]
    # worker 1's first trial is left out: 5 trials make two windows of 2, the fifth is dropped
    rows = scaling.windows(trials, slots=1, count=2)
    assert [row["trials"] for row in rows] == ["1-2", "3-4"]
    assert rows[1]["slot_seconds_per_trial"] == pytest.approx(1.0)  # 3..5 s over 2 trials


def test_driver_cpu_per_trial_is_split_by_the_trials_ended() -> None:
    # (trials ended, driver CPU seconds so far), sampled every 0.5 s: 4 trials, 2 windows
    samples = [(0, 1.0), (0, 2.0), (1, 2.5), (1, 2.6), (2, 3.0), (3, 3.4), (4, 4.2), (4, 4.5)]
    # window 1: from the first end (2.5) to the second (3.0), 1 trial; window 2: to the
    # fourth (4.2), 2 trials
    assert scaling.driver_cpu_per_trial(samples, total=4, count=2) == pytest.approx(
        [(3.0 - 2.5) / 1, (4.2 - 3.0) / 2]
    )


def test_a_process_cpu_time_grows_with_its_work() -> None:
    import os
    import time

    before = scaling._cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert scaling._cpu_seconds(os.getpid()) - before == pytest.approx(0.3, abs=0.05)

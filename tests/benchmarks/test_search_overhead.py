"""benchmarks/search_overhead.py's split of slot time, on hand-built trial rows."""

from __future__ import annotations

import pytest
import search_overhead as overhead


def _row(started: float, reported: float, seconds: float, trained: int, **extra) -> dict:
    return {
        "started_at": started,
        "reported_at": reported,
        "seconds": seconds,
        "trained_epochs": trained,
        **extra,
    }


def test_breakdown_splits_slot_time_into_hand_computed_parts() -> None:
    # command 0..20 s on 2 slots (40 slot-s)
    # slot A: trial 1 starts at 4, pre-trains a teacher (3 s), set-up 1 s, epochs of 2 s
    #         reported at 10 and 12.5 (0.5 s reporting), then trial 3 starts at 13
    #         (1 s scheduling gap): set-up 0.5 s, one epoch of 1.5 s reported at 15
    # slot B: trial 2 starts at 4, set-up 1 s, epochs reported at 7 and 16 (3 s + 8 s)
    trials = [
        [
            _row(4.0, 10.0, 2.0, 1, teacher_seconds=3.0),
            _row(4.0, 12.5, 2.0, 2, teacher_seconds=3.0),
        ],
        [_row(4.0, 7.0, 2.0, 1), _row(4.0, 16.0, 8.0, 2)],
        [_row(13.0, 15.0, 1.5, 1)],
    ]
    report = overhead.breakdown(trials, started=0.0, ended=20.0, slots=2)
    parts = report["seconds"]
    assert parts["training"] == pytest.approx(2 + 2 + 2 + 8 + 1.5)
    assert parts["teacher pre-training"] == pytest.approx(3.0)
    assert parts["start-up"] == pytest.approx(8.0)
    assert parts["trial set-up"] == pytest.approx(1 + 1 + 0.5)
    assert parts["per-epoch reporting"] == pytest.approx(0.5 + 1.0)
    # after the last start (13): slot A busy 13..15, slot B 13..16; idle 15..16 on A
    assert parts["tail"] == pytest.approx(1.0)
    assert parts["between trials"] == pytest.approx(0.5)  # 12.5..13 on slot A
    assert parts["wind-down"] == pytest.approx(8.0)
    assert sum(parts.values()) == pytest.approx(40.0)
    work = 15.5 + 3.0
    assert report["overhead_seconds"] == pytest.approx(40 - work)
    assert report["overhead_share"] == pytest.approx(1 - work / 40)
    assert report["overhead_share_while_trials_run"] == pytest.approx(1 - work / 24)
    assert report["per_trial_overhead_share"] == pytest.approx(1 - work / 23)


def test_replayed_epochs_cost_no_training() -> None:
    # the first row was replayed from the graph store: trained_epochs did not grow
    trials = [[_row(0.0, 1.0, 0.7, 0), _row(0.0, 2.0, 0.9, 1)]]
    report = overhead.breakdown(trials, started=0.0, ended=2.0, slots=1)
    assert report["seconds"]["training"] == pytest.approx(0.9)
    # 0..1 s loaded and replayed the stored epoch: set-up, not 0.3 s of it plus 0.7 s training
    assert report["seconds"]["trial set-up"] == pytest.approx(1.0)
    assert report["seconds"]["per-epoch reporting"] == pytest.approx(0.1)


def test_epochs_replayed_mid_trial_count_as_reporting_not_negative_time() -> None:
    # a trial resumed from the store: epoch 1 trained (1 s), epochs 2-3 replayed in 0.1 s each
    # with their original 5 s stamps, epoch 4 trained (2 s)
    trials = [
        [
            _row(0.0, 1.5, 1.0, 1),
            _row(0.0, 1.6, 5.0, 1),
            _row(0.0, 1.7, 5.0, 1),
            _row(0.0, 3.8, 2.0, 2),
        ]
    ]
    report = overhead.breakdown(trials, started=0.0, ended=4.0, slots=1)
    parts = report["seconds"]
    assert parts["training"] == pytest.approx(3.0)
    assert parts["per-epoch reporting"] == pytest.approx(0.1 + 0.1 + 0.1)
    assert parts["trial set-up"] == pytest.approx(0.5)
    assert sum(parts.values()) == pytest.approx(4.0)


def test_a_workers_first_set_up_is_warm_up_not_a_per_trial_cost() -> None:
    # the layout of the first test, with Tune's pid: trials 1 and 3 ran in worker 11 (slot A),
    # trial 2 in worker 22; trial 1 pre-trained a teacher (3 s) inside its 4 s set-up
    trials = [
        [
            _row(4.0, 10.0, 2.0, 1, teacher_seconds=3.0, pid=11),
            _row(4.0, 12.5, 2.0, 2, teacher_seconds=3.0, pid=11),
        ],
        [_row(4.0, 7.0, 2.0, 1, pid=22), _row(4.0, 16.0, 8.0, 2, pid=22)],
        [_row(13.0, 15.0, 1.5, 1, pid=11)],
    ]
    report = overhead.breakdown(trials, started=0.0, ended=20.0, slots=2)
    parts = report["seconds"]
    assert parts["worker warm-up"] == pytest.approx(1 + 1)  # trials 1 and 2, teacher excluded
    assert parts["trial set-up"] == pytest.approx(0.5)  # trial 3 only
    assert parts["teacher pre-training"] == pytest.approx(3.0)
    assert sum(parts.values()) == pytest.approx(40.0)
    work = 15.5 + 3.0
    assert report["overhead_share"] == pytest.approx(1 - work / 40)
    assert report["per_trial_overhead_share"] == pytest.approx(1 - work / (23 - 2))


def test_the_worker_of_the_earliest_start_is_first_whatever_the_row_order() -> None:
    rows = [[_row(5.0, 6.0, 0.5, 1, pid=7)], [_row(1.0, 2.0, 0.5, 1, pid=7)]]
    assert overhead._first_in_worker(rows) == [False, True]
    assert overhead._first_in_worker([[_row(1.0, 2.0, 0.5, 1)]]) == [False]

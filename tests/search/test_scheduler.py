from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from dcl_search.search._scheduler import LiveTrialsASHA
from dcl_search.search._store import GraphStore, record_ended

STATUSES = [Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.TERMINATED, Trial.ERROR]


class _Controller:
    """What Tune's controller shows a scheduler: every trial in the order it added them, and
    the set of those that have not ended."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []

    def get_trials(self) -> list[Trial]:
        return self.trials

    def get_live_trials(self) -> set[Trial]:
        return {t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)}


def test_the_next_trial_is_the_one_tunes_fifo_choice_picks() -> None:
    rng = random.Random(0)
    scheduler = LiveTrialsASHA(time_attr="epoch", metric="acc", mode="max", max_t=8)
    controller = _Controller()
    unknown = Trial("x", stub=True)  # added before the scheduler was (Tune's own scan then)
    controller.trials.append(unknown)
    picked = set()
    for _ in range(300):
        if rng.random() < 0.3:
            trial = Trial("x", stub=True)
            controller.trials.append(trial)
            scheduler.on_trial_add(controller, trial)
        for trial in rng.sample(controller.trials, min(3, len(controller.trials))):
            trial.set_status(rng.choice(STATUSES))
        # most steps: nothing or one trial waiting; some: several, where the order matters
        expected = FIFOScheduler.choose_trial_to_run(scheduler, controller)
        assert scheduler.choose_trial_to_run(controller) is expected
        picked.add(None if expected is None else expected.status)
    assert picked == {None, Trial.PENDING, Trial.PAUSED}


def _asha(**options) -> LiveTrialsASHA:
    # rungs at epochs 1, 2 and 4 of 8
    return LiveTrialsASHA(
        time_attr="epoch", metric="acc", mode="max", max_t=8, reduction_factor=2, **options
    )


def _row(epoch: int, acc: float) -> dict:
    return {"epoch": epoch, "acc": acc}


def test_a_resumed_search_gives_asha_back_the_results_of_the_trials_before(
    tmp_path: Path,
) -> None:
    # Tune saves no scheduler state: without the replay the resumed ASHA's rungs start empty,
    # and the probes below would all go on
    rng = random.Random(1)
    store = GraphStore.of_run(tmp_path)
    live = _asha()
    restored = []
    for number in range(12):  # as Tune runs them: each trial until ASHA stops it
        trial = SimpleNamespace(trial_id=f"t{number}", last_result={})
        live.on_trial_add(None, trial)
        rows, decision = [], TrialScheduler.CONTINUE
        while decision == TrialScheduler.CONTINUE and len(rows) < 8:
            rows.append(_row(len(rows) + 1, rng.random()))
            decision = live.on_trial_result(None, trial, rows[-1])
        # the graph's rows, as far as another trial of it later trained them
        further = [_row(epoch, 1.0) for epoch in range(len(rows) + 1, 9)]
        store.write_rows(f"key{number}", rows + further)
        last = {**rows[-1], "key": f"key{number}"}
        if number < 10:
            live.on_trial_complete(None, trial, rows[-1])
            record_ended(tmp_path, trial.trial_id, last)
        else:  # running at the kill: in Tune's saved state, with its last result
            restored.append(SimpleNamespace(trial_id=trial.trial_id, last_result=last))
    new = SimpleNamespace(trial_id="new", last_result={})
    live.on_trial_add(None, new)

    resumed = _asha(run_dir=tmp_path)
    for trial in [*restored, new]:
        resumed.on_trial_add(None, trial)
    # a restored trial goes on from its checkpoint: epochs it had reported come again
    for trial in restored:
        row = _row(trial.last_result["epoch"], 0.0)
        for scheduler in (live, resumed):
            assert scheduler.on_trial_result(None, trial, row) == TrialScheduler.CONTINUE
    decisions = {"live": [], "resumed": []}
    for probe in range(40):
        row = _row(rng.choice([1, 2, 4]), rng.random())
        for name, scheduler in (("live", live), ("resumed", resumed)):
            trial = SimpleNamespace(trial_id=f"probe{probe}", last_result={})
            scheduler.on_trial_add(None, trial)
            decisions[name].append(scheduler.on_trial_result(None, trial, row))
    assert decisions["resumed"] == decisions["live"]
    assert set(decisions["live"]) == {TrialScheduler.CONTINUE, TrialScheduler.STOP}


def test_a_trial_whose_stored_results_cannot_be_read_is_left_out_of_the_replay(
    tmp_path: Path, caplog
) -> None:
    store = GraphStore.of_run(tmp_path)
    store.write_rows("good", [_row(1, 0.9)])
    store.write_rows("bad", [_row(1, 0.8)])
    (store.folder("bad") / "rows.json").write_text("[{")  # cut short
    record_ended(tmp_path, "bad", {**_row(1, 0.8), "key": "bad"})
    record_ended(tmp_path, "good", {**_row(1, 0.9), "key": "good"})
    resumed = _asha(run_dir=tmp_path)
    resumed.on_trial_add(None, SimpleNamespace(trial_id="new", last_result={}))
    assert "ASHA goes on without the results of trial bad" in caplog.text
    # the good one's result was replayed: a lower first result is now cut
    assert resumed.on_trial_result(None, SimpleNamespace(trial_id="new"), _row(1, 0.5)) == "STOP"

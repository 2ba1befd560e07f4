from __future__ import annotations

import random

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from dcl_search.search._scheduler import LiveTrialsASHA

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

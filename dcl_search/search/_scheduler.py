"""Tune's ASHA, choosing the next trial to run among the live trials instead of all of them."""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler


class LiveTrialsASHA(ASHAScheduler):
    """ASHA as Tune runs it, with the same choice of the next trial to run.

    Tune's choice (``FIFOScheduler.choose_trial_to_run``) looks through the list of every
    trial the search made, twice, at each step of the driver's loop, which runs many times per
    trial: with a thousand trials that was 5% of the driver's time, and it grows with every
    trial (benchmarks/search_scaling.py). The same trial, the first pending one in the order
    Tune added them (else the first paused one), is among the trials that have not ended,
    which Tune keeps as a set: at most the running and the pending ones.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._added: dict[str, int] = {}  # trial id → the order Tune added it in

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._added.setdefault(trial.trial_id, len(self._added))

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        live = tune_controller.get_live_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [trial for trial in live if trial.status == status]
            if not waiting:
                continue
            if any(trial.trial_id not in self._added for trial in waiting):
                return super().choose_trial_to_run(tune_controller)  # added before us: Tune's scan
            return min(waiting, key=lambda trial: self._added[trial.trial_id])
        return None

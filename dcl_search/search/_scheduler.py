"""Tune's ASHA, choosing the next trial to run among the live trials instead of all of them, and
given back on ``--resume`` the results it had recorded before."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from dcl_search.search._store import GraphStore, ended_results

logger = logging.getLogger(__name__)


class LiveTrialsASHA(ASHAScheduler):
    """ASHA as Tune runs it, with the same choice of the next trial to run.

    Tune's choice (``FIFOScheduler.choose_trial_to_run``) looks through the list of every
    trial the search made, twice, at each step of the driver's loop, which runs many times per
    trial: with a thousand trials that was 5% of the driver's time, and it grows with every
    trial (benchmarks/search_scaling.py). The same trial, the first pending one in the order
    Tune added them (else the first paused one), is among the trials that have not ended,
    which Tune keeps as a set: at most the running and the pending ones.

    Tune saves no scheduler state: a resumed search's ASHA would start with empty rungs, and
    cut (or keep) its next trials on a handful of results instead of the whole search's. Given
    ``run_dir``, the first trial of a session first gives ASHA back, from the driver's ledger
    and the graph store, the results every trial reported at the epochs it reached, as they
    reached ASHA the first time; a restored trial Tune goes on with gets its own from its last
    result.
    """

    # class default: a scheduler pickled by an older version is restored without it
    run_dir: Path | None = None

    def __init__(self, *args: Any, run_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_dir = run_dir
        self._added: dict[str, int] = {}  # trial id → the order Tune added it in
        self._replayed: set[str] = set()

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        if not self._added and self.run_dir is not None:
            for trial_id, result in ended_results(self.run_dir).items():
                ended = SimpleNamespace(trial_id=trial_id)
                super().on_trial_add(tune_controller, ended)
                self._replay(tune_controller, ended, result)
                super().on_trial_remove(tune_controller, ended)
        super().on_trial_add(tune_controller, trial)
        self._added.setdefault(trial.trial_id, len(self._added))
        if self.run_dir is not None and trial.trial_id not in self._replayed:
            self._replay(tune_controller, trial, trial.last_result or {})

    def _replay(self, tune_controller, trial, last: dict[str, Any]) -> None:
        """Reports to ASHA the stored results of ``trial``'s graph up to its ``last`` epoch.
        The store writes a graph's rows at every epoch where ASHA may stop a trial, so each of
        those the trial reached is there."""
        if "epoch" not in last or not last.get("key"):
            return  # new, or failed before its first epoch
        self._replayed.add(trial.trial_id)
        # Tune logs an error raised while it restores trials, then starts the experiment
        # afresh, half restored: a trial whose results cannot be read is left out instead
        try:
            rows = GraphStore.of_run(self.run_dir).rows(last["key"])
            for row in rows:
                if row["epoch"] > last["epoch"]:  # another trial took the graph further
                    break
                super().on_trial_result(tune_controller, trial, row)
        except Exception as problem:
            logger.warning(
                "ASHA goes on without the results of trial %s (%s: %s)",
                trial.trial_id,
                type(problem).__name__,
                problem,
            )

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

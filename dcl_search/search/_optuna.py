"""Optuna as Tune's searcher, told the truth about trials that ASHA stopped.

Ray's OptunaSearch tells every trial that ended with a result as COMPLETE, so TPE would learn
from 1-epoch accuracies as if they were final. Here a trial that ended before the last epoch
is told as PRUNED: TPE then ranks it by its intermediate values, as Optuna's own pruners do.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from dcl_search.search._space import SearchSpace, suggest_config
from dcl_search.search._store import ended_unknown

logger = logging.getLogger(__name__)

OPTUNA_JOURNAL = "optuna.log"
# the study's record of which Tune trial each Optuna trial is, for a resumed search
TUNE_TRIAL_ID = "tune_trial_id"
RERUN_OF = "rerun_of"
OLD_OPTUNA_DB = "optuna.db"  # searches started before the journal; still resumed from it


def optuna_storage(run_dir: Path) -> optuna.storages.BaseStorage:
    """The study's storage in a run folder: an append-only journal file.

    SQLite cost ~35 ms per sampled graph and ~10 ms per reported epoch in the driver, each
    one a delay between a trial's epochs or between trials; the journal costs under 3 ms and
    a write cut short by a killed driver is skipped on reading.
    """
    old = run_dir / OLD_OPTUNA_DB
    if old.exists() and not (run_dir / OPTUNA_JOURNAL).exists():
        return optuna.storages.RDBStorage(f"sqlite:///{old.resolve()}")
    backend = optuna.storages.journal.JournalFileBackend(str((run_dir / OPTUNA_JOURNAL).resolve()))
    return optuna.storages.JournalStorage(backend)


class DefineByRun:
    """A picklable define-by-run function over a search space (Tune saves its searcher)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return suggest_config(trial, self.space)


class PrunedAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that reports ASHA-stopped trials (fewer than ``max_epochs``) as PRUNED,
    and, given ``run_dir`` and ``samples``, counts the trials that ended after Tune's last save
    of a killed search towards ``samples`` when it resumes."""

    # class defaults: a searcher pickled by an older version is restored without them
    run_dir: Path | None = None
    samples: int | None = None
    ended_unknown = 0

    def __init__(
        self,
        *args: Any,
        max_epochs: int,
        epoch_key: str = "epoch",
        run_dir: Path | None = None,
        samples: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_epochs = max_epochs
        self.epoch_key = epoch_key
        self.run_dir = run_dir
        self.samples = samples

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        # the sampler's random state comes back as Tune saved it: the resumed search would draw
        # again the graphs drawn between that save and the kill, which ran or ran to an end
        self._ot_study.sampler.reseed_rng()
        # Tune saves this searcher with its own state, every few seconds: a trial suggested
        # after the last save and ended before a killed driver is in the driver's ledger of
        # ended trials but unknown to both. It counts as one of the samples (its result is in
        # the ledger), so the resumed search suggests one fewer.
        if self.run_dir is not None:
            unknown = ended_unknown(self.run_dir, self._ot_trials)
            self.ended_unknown = len(unknown)
            # Tune logs an error raised while it restores, then starts the experiment afresh
            # with this searcher half restored, and waits forever for a trial it never ends
            try:
                self._rerun_lost(ended=set(unknown))
            except Exception as problem:
                logger.warning(
                    "the trials lost with the killed driver could not be queued again (%s): "
                    "new samples take their places",
                    problem,
                )

    def _rerun_lost(self, ended: set[str]) -> None:
        """Re-queues the graphs of the trials a killed driver lost while they ran.

        A trial suggested after Tune's last save and still running at the kill is unknown to
        the restored Tune and searcher: nothing would ever end it, and a new sample would take
        its place, its graph's trained epochs unused. Each such study trial is told FAIL and
        its parameters are enqueued, so the next sample is the same graph, which continues
        from the epochs the graph store kept. Trials in ``ended`` (the driver's ledger) ended
        before the kill and count as samples already.

        A study trial without a Tune trial id was killed while its parameters were sampled
        (the id is noted once they all are): its graph never ran, so it is told FAIL and not
        queued again; its partial parameters would otherwise fix part of a new sample."""
        known = {trial.number for trial in self._ot_trials.values()}
        for lost in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if lost.number in known or lost.user_attrs.get(TUNE_TRIAL_ID) in ended:
                continue
            if TUNE_TRIAL_ID in lost.user_attrs:
                # enqueued first: a driver killed in between re-queues it again, not never
                self._ot_study.enqueue_trial(lost.params, user_attrs={RERUN_OF: lost.number})
            self._ot_study.tell(lost.number, state=TrialState.FAIL)

    def suggest(self, trial_id: str) -> dict | None:
        if (
            self.samples is not None
            and trial_id not in self._ot_trials
            and len(self._ot_trials) + self.ended_unknown >= self.samples
        ):
            return Searcher.FINISHED
        new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ID, trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # a resumed trial reports again the epochs after its last checkpoint: Optuna keeps the
        # first value and would warn about each one on the console
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The reported value is ignored", UserWarning)
            try:
                super().on_trial_result(trial_id, result)
            except optuna.exceptions.UpdateFinishedTrialError:
                self._ended_in_study(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials:
            return  # e.g. one the study had ended before a killed driver (_ended_in_study)
        if trial_id not in self._ot_trials:
            super().on_trial_complete(trial_id, result, error)
            return
        epoch = None if (error or result is None) else result.get(self.epoch_key)
        if epoch is not None and result.get(self.metric) is not None:
            # Tune hands the last result to on_trial_complete only: without this report a trial
            # stopped at its first rung would reach Optuna with no value at all.
            with warnings.catch_warnings():  # a resumed trial may replay an epoch already told
                warnings.simplefilter("ignore", UserWarning)
                try:
                    self._ot_trials[trial_id].report(result[self.metric], int(epoch))
                except optuna.exceptions.UpdateFinishedTrialError:
                    self._ended_in_study(trial_id)
                    return
        if epoch is None or epoch >= self.max_epochs:
            super().on_trial_complete(trial_id, result, error)
            return
        try:
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        except Exception as problem:  # e.g. a NaN intermediate value
            logger.warning("could not tell trial %s as pruned: %s", trial_id, problem)
        self._completed_trials.add(trial_id)

    def _ended_in_study(self, trial_id: str) -> None:
        # The study's journal is written at once, Tune's copy of this searcher only with Tune's
        # state: a driver killed in between resumes a searcher that takes the trial for running,
        # and the trial ends again with its noted result (README, "Interrupt and resume"). The
        # study keeps the end it was told first.
        self._completed_trials.add(trial_id)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":  # the reference implementation's sampler
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)

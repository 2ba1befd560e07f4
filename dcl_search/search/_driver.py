"""The search driver: Ray Tune runs ASHA over graphs sampled by Optuna; results land in a folder.

results/<name>/
    search.json          the settings (``--resume`` reads them)
    optuna.log           the Optuna study, a journal file (``optuna-dashboard results/<name>/optuna.log``)
    trial_<id>/          Tune's per-trial results, TensorBoard events, checkpoints
    graphs/<key>/        one folder per distinct trained graph (see _store.py)
    pretrained/          frozen teachers pre-trained for this search
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Iterator

from dcl_search._ray import init_ray, stop_ray
from dcl_search._words import counted
from dcl_search.search._settings import SearchError, SearchSettings
from dcl_search.search._store import GraphStore, ended_results, ended_unknown, record_ended

METRIC = "acc_node0"
_ENDED = ("TERMINATED", "ERROR")  # Tune's statuses of a trial that will not report again


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search; Tune saved its state, so ``--resume`` carries on."""

    def __init__(self, ended: int, samples: int, seconds: float) -> None:
        super().__init__(f"{ended} of {samples} trials ended")
        self.ended, self.samples, self.seconds = ended, samples, seconds


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def _callbacks(settings: SearchSettings, log: Callable[[str], None]) -> list:
    from ray import tune

    from dcl_search.search._state_backup import SessionBackup
    from dcl_search.search._tensorboard import TensorBoardLogger

    store = GraphStore.of_run(settings.run_dir)

    class ReleaseLocks(tune.Callback):
        """ASHA stops a trial by killing it, so its graph lock is freed here, on the driver."""

        def ended(self, trial) -> None:
            result = trial.last_result or {}
            record_ended(settings.run_dir, trial.trial_id, result)
            # a trial trains the one graph its results name; looking through every graph's
            # folder instead cost a little more per trial with every graph the search made
            if result.get("key"):
                store.release(result["key"], trial.trial_id)
            else:  # it failed before its first epoch
                store.release_all_of(trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended(trial)

    class Progress(tune.Callback):
        """One line per ended trial, and a status line of the running ones whenever
        ``status_every`` seconds pass without a line (a paper-sized trial runs for hours).
        Counts and best start, at the first line, from Tune's trial list and the driver's
        ledger, so a resumed search goes on counting from the trials that ended before it; then
        they grow as trials end."""

        # class defaults: Tune may restore an object pickled by an older version
        counted_ids: set[str] | None = None
        best: float | None = None

        def __init__(self) -> None:
            self.last_line = time.monotonic()

        def count_ended(self, trials, trial=None) -> None:
            """Counts ``trial``'s end, and at the first call those of the trials that ended
            before: in Tune's list, and in the ledger of a killed driver those that ended after
            Tune's last save, unknown to a resumed Tune. The list holds every trial the search
            made: looking through it at every line cost more with every trial."""
            if self.counted_ids is None:
                self.counted_ids = set()
                ledger = ended_unknown(settings.run_dir, (t.trial_id for t in trials))
                for trial_id, result in ledger.items():
                    self._count(trial_id, result)
                for t in trials:
                    if t.status in _ENDED:
                        self._count(t.trial_id, t.last_result or {})
            if trial is not None:
                self._count(trial.trial_id, trial.last_result or {})

        def _count(self, trial_id: str, result: dict) -> None:
            if trial_id in self.counted_ids:
                return
            self.counted_ids.add(trial_id)
            if result.get(METRIC) is not None:
                self.best = max(result[METRIC], -1.0 if self.best is None else self.best)

        def best_shown(self) -> str:
            return "-" if self.best is None else f"{100 * self.best:.2f}%"

        def log(self, text: str) -> None:
            self.last_line = time.monotonic()
            log(text)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            every = settings.status_every
            if not every or time.monotonic() - self.last_line < every:
                return
            latest = {t.trial_id: t.last_result or {} for t in trials if t.status == "RUNNING"}
            latest[trial.trial_id] = result
            running = ", ".join(
                f"{tid} {r['epoch']}/{settings.recipe.epochs} {100 * r[METRIC]:.2f}%"
                for tid, r in sorted(latest.items())
                if r.get(METRIC) is not None
            )
            self.count_ended(trials)
            self.log(
                f"... {len(self.counted_ids)} of {counted(settings.samples, 'trial')} ended, best "
                f"{self.best_shown()}; running (epoch, {METRIC}): {running}"
            )

        def _line(self, trials, trial, how: str) -> None:
            # Tune marks a completed trial TERMINATED only after this callback, a failed one
            # before (and counted at the first call then)
            self.count_ended(trials, trial)
            result = trial.last_result or {}
            accuracy = result.get(METRIC)
            shown = "-" if accuracy is None else f"{100 * accuracy:.2f}%"
            reused = (
                " (reused)"
                if result.get("reused_epochs") and not result.get("trained_epochs")
                else ""
            )
            self.log(
                f"[{len(self.counted_ids)}/{settings.samples}] {trial.trial_id} {how} after "
                f"{counted(result.get('epoch', 0), 'epoch')}: {METRIC} {shown}{reused}, "
                f"graph {result.get('graph_hash', '?')}; best {self.best_shown()}"
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(
                trials,
                trial,
                "done"
                if (trial.last_result or {}).get("epoch") == settings.recipe.epochs
                else "stopped",
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trials, trial, "FAILED")

    class StateBackup(tune.Callback):
        """Tune saves its state at the end of a step: a copy taken right after is complete."""

        backup: SessionBackup | None = None

        def setup(self, **info) -> None:  # once per session: a resumed search is a new one
            self.backup = SessionBackup(settings.run_dir)

        def on_step_end(self, iteration, trials, **info) -> None:
            if self.backup is None:
                self.backup = SessionBackup(settings.run_dir)
            self.backup.after_step()

    class WarmExport(tune.Callback):
        """Once every sample has started, a trial's end leaves its slot idle for good: the
        export's drawing modules load then, in a thread, instead of after the last trial."""

        warming = False  # class default: Tune may restore an object pickled by an older version

        def maybe_warm(self, trials) -> None:
            if not self.warming and len(trials) >= settings.samples:
                self.warming = True
                threading.Thread(target=_warm_export, name="warm-export", daemon=True).start()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.maybe_warm(trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.maybe_warm(trials)

    callbacks = [ReleaseLocks(), Progress(), StateBackup(), WarmExport()]
    try:
        callbacks.append(TensorBoardLogger())
    except ImportError:  # no tensorboardX: no TensorBoard files, as with Tune's own logger
        pass
    return callbacks


def _warm_export() -> None:
    from dcl_search.graphs import warm_drawing

    try:
        warm_drawing()
    except Exception:  # only a head start: the export itself reports what fails
        pass


def _searcher(settings: SearchSettings):
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    from dcl_search.search._optuna import (
        DefineByRun,
        PrunedAwareOptunaSearch,
        make_sampler,
        optuna_storage,
    )

    storage = optuna_storage(settings.run_dir)
    searcher = PrunedAwareOptunaSearch(
        space=DefineByRun(settings.space),
        metric=METRIC,
        mode="max",
        sampler=make_sampler(settings.sampler, settings.sampler_seed),
        storage=storage,
        study_name=settings.name,
        max_epochs=settings.recipe.epochs,
        run_dir=settings.run_dir,
        samples=settings.samples,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=settings.concurrency)


def _trainable(settings: SearchSettings):
    from ray import tune

    from dcl_search.search._trial import run_trial

    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_trial, settings=settings), resources)


def _new_tuner(settings: SearchSettings, log: Callable[[str], None]):
    from ray import tune

    from dcl_search.search._scheduler import LiveTrialsASHA

    scheduler = LiveTrialsASHA(
        time_attr="epoch",
        metric=METRIC,
        mode="max",
        max_t=settings.recipe.epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
        run_dir=settings.run_dir,
    )
    return tune.Tuner(
        _trainable(settings),
        tune_config=tune.TuneConfig(
            search_alg=_searcher(settings),
            scheduler=scheduler,
            num_samples=settings.samples,
            trial_dirname_creator=_trial_dirname,
            reuse_actors=True,  # a fresh worker per trial re-imports torch: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.storage,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            # Keeping all: with num_to_keep, Tune saves its whole experiment state (about 24 KB
            # per trial) after every trial checkpoint, so that it never names a deleted one,
            # and a trial's time grew with the trials before it (benchmarks/search_scaling.py).
            # Tune now saves every 10 s or more; a trial that ended after its last save is in
            # the driver's ledger (ended_trials.jsonl), which a resumed search counts. Trials
            # checkpoint at ASHA's milestones only: a few small folders each.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=_callbacks(settings, log),
        ),
    )


def _restored_tuner(settings: SearchSettings):
    from ray import tune

    from dcl_search.search._state_backup import repair_state

    path = str(settings.run_dir)
    if repair_state(settings.run_dir):
        print(
            f"{path}: the last saved search state was cut short; resuming from the one before",
            file=sys.stderr,
        )
    if not tune.Tuner.can_restore(path):
        raise SearchError(f"{path}: no Tune experiment state to resume from")
    try:
        return tune.Tuner.restore(
            path, _trainable(settings), resume_unfinished=True, resume_errored=True
        )
    except Exception as error:  # can_restore may say yes to a folder restore then rejects
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SearchError(f"{path}: cannot resume this search ({first})") from None


def _import_tune() -> None:
    """What the search imports besides Ray: Ray Tune, Optuna, the trainable (1.5-2 s)."""
    import dcl_search.search._optuna  # noqa: F401
    import dcl_search.search._scheduler  # noqa: F401
    import dcl_search.search._tensorboard  # noqa: F401
    import dcl_search.search._trial  # noqa: F401


def run_search(
    settings: SearchSettings,
    *,
    resume: bool = False,
    address: str | None = None,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
    ready: Callable[[SearchSettings], None] = lambda settings: None,
) -> float:
    """Runs (or resumes) the search; returns its wall time in seconds.

    ``ready`` runs once Ray has started, before the run folder is written or any trial runs
    (the command line checks the dataset meanwhile), with the settings as they will run: the
    share of a GPU decided where ``gpus_per_trial`` is None. What it raises stops the search,
    and Ray.

    Raises :class:`SearchInterrupted` (after Tune has saved its state) when Ctrl-C ended the
    search before all its samples did: Tune catches the signal and returns as if done.
    """
    settings = settings.absolute()
    if not resume and (settings.run_dir / "search.json").exists():
        raise SearchError(
            f"{settings.run_dir} already holds a search; resume it with --resume {settings.run_dir} "
            "or choose another --name"
        )
    gpus = init_ray(
        address,
        cpus_per_task=settings.cpus_per_trial,
        gpus_per_task=settings.gpus_per_trial,
        noun="trial",
    )
    if settings.gpus_per_trial is None:
        settings = _on_gpus(settings, gpus)
    try:
        _import_tune()  # while the caller's check, if any, runs
        ready(settings)
    except BaseException:
        stop_ray()
        raise
    settings.save()  # after init_ray's check: a search that cannot start leaves no folder
    GraphStore.of_run(settings.run_dir).release_all()  # nothing runs yet: every lock is stale
    tuner = _restored_tuner(settings) if resume else _new_tuner(settings, log)
    started = time.perf_counter()
    with _trials_on_prestarted_workers():
        tuner.fit()
    seconds = time.perf_counter() - started
    # Tune marks the trials it stops on Ctrl-C TERMINATED too (its saved state has them
    # RUNNING): only the trials our callbacks saw end count, those that ended after Tune's
    # last save before a killed driver included, which the resumed Tune does not know
    ended = len(ended_results(settings.run_dir))
    if ended < settings.samples:  # its running trials go on after --resume: not stale yet
        raise SearchInterrupted(ended, settings.samples, seconds)
    _fail_stale_optuna_trials(settings)
    return seconds


def _on_gpus(settings: SearchSettings, gpus: float) -> SearchSettings:
    """The settings with the share of a GPU that Ray's start decided, and no more trials at
    once than the cluster's GPUs hold at that share: Optuna would otherwise sample graphs for
    trials that wait, without the results of those before them."""
    import ray

    concurrency = settings.concurrency
    if gpus > 0:
        fit = int(ray.cluster_resources().get("GPU", 0) / gpus + 1e-9)
        concurrency = max(1, min(concurrency, fit))
    return dataclasses.replace(settings, gpus_per_trial=gpus, concurrency=concurrency)


@contextlib.contextmanager
def _trials_on_prestarted_workers() -> Iterator[None]:
    """Lets Tune's trial actors take the workers Ray starts with itself (one per CPU, past
    Python's and Ray's imports by the time the first trial is asked for) instead of new ones:
    0.5 s of the 2-core demo's start.

    Tune gives its actors a runtime environment that only sets ``PL_DISABLE_FORK=1``, for
    PyTorch Lightning, which no trial here runs; Ray hands an actor with a runtime environment
    only a worker started for that environment. Variables Tune passes on from the driver
    (cloud credentials, Ray Train's) still make one, and new workers with it. Tune's default
    is back afterwards, for whatever else this process runs with Tune.
    """
    try:
        from ray.tune.execution.class_cache import DEFAULT_ENV_VARS
    except ImportError:  # another Ray version: it runs as Tune chose
        DEFAULT_ENV_VARS = {}
    saved = dict(DEFAULT_ENV_VARS)
    DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)
    try:
        yield
    finally:
        DEFAULT_ENV_VARS.update(saved)


def _fail_stale_optuna_trials(settings: SearchSettings) -> None:
    """Optuna trials still RUNNING once Tune is done belong to trials lost with a killed driver
    that the searcher's restore did not queue again (``PrunedAwareOptunaSearch._rerun_lost``
    fails and re-queues the others): one it could not, with a warning, or one the ledger has
    as ended though the study was never told (Tune tells the study first)."""
    import optuna
    from optuna.trial import TrialState

    from dcl_search.search._optuna import optuna_storage

    study = optuna.load_study(study_name=settings.name, storage=optuna_storage(settings.run_dir))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)

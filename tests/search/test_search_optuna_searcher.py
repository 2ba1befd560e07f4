"""The searcher's view of trials against the study's, across a driver killed between saves."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from ray.tune.search import Searcher

from dcl_search.search._optuna import (
    RERUN_OF,
    TUNE_TRIAL_ID,
    PrunedAwareOptunaSearch,
    optuna_storage,
)
from dcl_search.search._store import record_ended

EPOCHS = 4


def _space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}


def _searcher(
    run_dir: Path, ledger: bool = False, samples: int | None = None
) -> PrunedAwareOptunaSearch:
    return PrunedAwareOptunaSearch(
        space=_space,
        metric="acc",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=optuna_storage(run_dir),
        study_name="run",
        max_epochs=EPOCHS,
        run_dir=run_dir if ledger else None,
        samples=samples,
    )


def _result(epoch: int, acc: float) -> dict:
    return {"acc": acc, "epoch": epoch, "training_iteration": epoch}


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="run", storage=optuna_storage(run_dir))


def test_a_trial_the_study_knew_ended_ends_again_quietly_after_a_resume(tmp_path: Path) -> None:
    # Tune saves its searcher with its own state, the study's journal is written at once: a
    # driver killed in between resumes a searcher that takes an ended trial for running. The
    # trial then reports its noted end again, which Optuna refused for a finished trial
    # (UpdateFinishedTrialError), ending the resumed search.
    searcher = _searcher(tmp_path)
    assert searcher.suggest("a") is not None and searcher.suggest("b") is not None
    searcher.on_trial_result("a", _result(1, 0.5))
    searcher.on_trial_result("b", _result(1, 0.4))
    searcher.save_to_dir(str(tmp_path))  # Tune's last save before the kill
    searcher.on_trial_result("a", _result(2, 0.6))
    searcher.on_trial_complete("a", _result(2, 0.6))  # stopped by ASHA: pruned
    searcher.on_trial_result("b", _result(EPOCHS, 0.9))
    searcher.on_trial_complete("b", _result(EPOCHS, 0.9))

    resumed = _searcher(tmp_path)
    resumed.restore_from_dir(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a warning on the console
        for trial, result in (("a", _result(2, 0.6)), ("b", _result(EPOCHS, 0.9))):
            resumed.on_trial_result(trial, result)
            resumed.on_trial_complete(trial, result)

    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE"]
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.6}
    assert trials[1].value == 0.9
    assert resumed.suggest("c") is not None  # and the search goes on
    assert len(_study(tmp_path).trials) == 3


def test_a_resumed_trial_that_had_not_ended_is_still_told_to_the_study(tmp_path: Path) -> None:
    searcher = _searcher(tmp_path)
    searcher.suggest("a")
    searcher.on_trial_result("a", _result(1, 0.5))
    searcher.save_to_dir(str(tmp_path))

    resumed = _searcher(tmp_path)
    resumed.restore_from_dir(str(tmp_path))
    resumed.on_trial_result("a", _result(2, 0.7))
    resumed.on_trial_complete("a", _result(2, 0.7))
    (trial,) = _study(tmp_path).trials
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {1: 0.5, 2: 0.7}


def test_a_trial_lost_with_a_killed_driver_is_the_next_sample_again(tmp_path: Path) -> None:
    # Tune saves its searcher with its own state every few seconds: a trial suggested after the
    # last save and still running at the kill is unknown to the resumed Tune and searcher. Its
    # graph must come back (the graph store kept its epochs), not a new sample in its place.
    searcher = _searcher(tmp_path, ledger=True, samples=4)
    kept = searcher.suggest("a")
    searcher.save_to_dir(str(tmp_path))  # Tune's last save before the kill
    lost = searcher.suggest("b")
    ended = searcher.suggest("c")
    # "c" ended before the kill, in the ledger; Tune tells the study first, but one it had not
    # told must not run again either
    record_ended(tmp_path, "c", _result(EPOCHS, 0.9))

    resumed = _searcher(tmp_path, ledger=True, samples=4)
    resumed.restore_from_dir(str(tmp_path))
    assert resumed.suggest("d") == lost
    fresh = resumed.suggest("e")
    assert fresh not in (kept, lost, ended)
    # a, c (ledger), the lost one's re-run and e make the 4 samples
    assert resumed.suggest("f") == Searcher.FINISHED

    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL", "RUNNING", "RUNNING", "RUNNING"]
    assert [t.user_attrs.get(TUNE_TRIAL_ID) for t in trials] == ["a", "b", "c", "d", "e"]
    assert [t.user_attrs.get(RERUN_OF) for t in trials] == [None, None, None, 1, None]
    assert trials[3].params == trials[1].params


def test_a_trial_killed_while_it_was_sampled_is_failed_and_not_sampled_again(
    tmp_path: Path,
) -> None:
    # The driver is killed between Optuna's first suggestion for a trial and the Tune trial id
    # noted once all are made: the study holds a RUNNING trial with part of a graph, which no
    # Tune trial ever ran. Queued again, its partial graph fixed part of the next sample.
    searcher = _searcher(tmp_path, ledger=True, samples=3)
    searcher.suggest("a")
    searcher.save_to_dir(str(tmp_path))
    _study(tmp_path).ask()  # sampling interrupted: no parameters, no Tune trial id

    resumed = _searcher(tmp_path, ledger=True, samples=3)
    resumed.restore_from_dir(str(tmp_path))
    assert resumed.suggest("b") is not None and resumed.suggest("c") is not None
    assert resumed.suggest("d") == Searcher.FINISHED  # the interrupted one took no sample

    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL", "RUNNING", "RUNNING"]
    assert [t.user_attrs.get(TUNE_TRIAL_ID) for t in trials] == ["a", None, "b", "c"]
    assert [t.user_attrs.get(RERUN_OF) for t in trials] == [None, None, None, None]


def test_a_study_that_cannot_be_read_at_restore_leaves_the_restore_whole(
    tmp_path: Path, caplog
) -> None:
    # Tune logs what a searcher's restore raises, then starts the experiment afresh with the
    # searcher half restored: the resumed search then waited forever
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    searcher = _searcher(run_dir, ledger=True, samples=4)
    searcher.suggest("a")
    searcher.save_to_dir(str(run_dir))
    searcher.suggest("b")
    moved = tmp_path / "moved"
    run_dir.rename(moved)  # the pickled study still names run/optuna.log

    resumed = _searcher(moved, ledger=True, samples=4)
    resumed.restore_from_dir(str(moved))
    assert "could not be queued again" in caplog.text
    assert list(resumed._ot_trials) == ["a"]

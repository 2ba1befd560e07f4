"""The searcher's view of trials against the study's, across a driver killed between saves."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from dcl_search.search._optuna import PrunedAwareOptunaSearch, optuna_storage

EPOCHS = 4


def _space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}


def _searcher(run_dir: Path) -> PrunedAwareOptunaSearch:
    return PrunedAwareOptunaSearch(
        space=_space,
        metric="acc",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=optuna_storage(run_dir),
        study_name="run",
        max_epochs=EPOCHS,
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

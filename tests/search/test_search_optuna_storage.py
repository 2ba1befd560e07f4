"""Where a run keeps its Optuna study: a journal file, or the SQLite file of an older run."""

from __future__ import annotations

from pathlib import Path

import optuna

from dcl_search.search._optuna import OPTUNA_JOURNAL, optuna_storage


def _one_trial(storage) -> None:
    study = optuna.create_study(study_name="run", storage=storage, direction="maximize")
    trial = study.ask()
    study.tell(trial, trial.suggest_int("x", 0, 9) / 10)


def test_a_new_run_writes_a_journal_that_reloads(tmp_path: Path) -> None:
    _one_trial(optuna_storage(tmp_path))
    assert (tmp_path / OPTUNA_JOURNAL).is_file() and not (tmp_path / "optuna.db").exists()
    trials = optuna.load_study(study_name="run", storage=optuna_storage(tmp_path)).trials
    assert len(trials) == 1 and trials[0].value == trials[0].params["x"] / 10


def test_a_journal_cut_short_by_a_killed_driver_still_loads(tmp_path: Path) -> None:
    _one_trial(optuna_storage(tmp_path))
    with (tmp_path / OPTUNA_JOURNAL).open("a") as journal:
        journal.write('{"op_code": 4, "worker_id": "x", "study_id": 0')  # no end of line
    assert len(optuna.load_study(study_name="run", storage=optuna_storage(tmp_path)).trials) == 1


def test_a_run_started_with_sqlite_resumes_from_it(tmp_path: Path) -> None:
    _one_trial(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    trials = optuna.load_study(study_name="run", storage=optuna_storage(tmp_path)).trials
    assert len(trials) == 1
    assert not (tmp_path / OPTUNA_JOURNAL).exists()

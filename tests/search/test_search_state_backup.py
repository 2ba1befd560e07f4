from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from dcl_search.search._state_backup import BACKUP, SessionBackup, known_trials, repair_state
from dcl_search.search._store import ended_result, ended_results, record_ended

SESSION = "2026-01-01_00-00-00"


def _state(folder: Path, trials: list[str], session: str = SESSION) -> None:
    data = {"trial_data": [[json.dumps({"trial_id": t}), "x"] for t in trials]}
    state = folder / f"experiment_state-{session}.json"
    state.write_text(json.dumps(data))
    # a save per second: two writes within the file system's clock tick share an mtime
    stamp = int(1e9) * len(trials)
    os.utime(state, ns=(stamp, stamp))
    (folder / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"s": 1}))
    (folder / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": 2}))


def _backed_up(folder: Path) -> dict[str, set[str]]:
    """The backup's files, and the trials its experiment state names."""
    files = sorted(path.name for path in (folder / BACKUP).iterdir())
    states = [
        json.loads((folder / BACKUP / name).read_text())
        for name in files
        if name.startswith("experiment_state-")
    ]
    return {
        "files": set(files),
        "trials": {json.loads(e[0])["trial_id"] for s in states for e in s["trial_data"]},
    }


def test_a_session_backs_up_its_own_saves_only(tmp_path: Path) -> None:
    later = "2026-01-02_00-00-00"
    _state(tmp_path, ["a"])  # a resumed search's earlier session
    backup = SessionBackup(tmp_path)
    backup.after_step()
    assert not (tmp_path / BACKUP).exists()  # not saved by this session: left as it is
    _state(tmp_path, ["a", "b"], later)  # this session's first save
    backup.after_step()
    assert _backed_up(tmp_path) == {
        "files": {
            f"{kind}-{later}.{ext}"
            for kind, ext in (
                ("experiment_state", "json"),
                ("searcher-state", "pkl"),
                ("search_gen_state", "json"),
            )
        },
        "trials": {"a", "b"},
    }
    _state(tmp_path, ["a", "b", "c"], later)
    backup.after_step()
    assert _backed_up(tmp_path)["trials"] == {"a", "b", "c"}
    # a file that merely sorts later is no save of this session's: it keeps to its own file
    _state(tmp_path, ["x"], "2026-01-03_00-00-00")
    _state(tmp_path, ["a", "b", "c", "d"], later)
    backup.after_step()
    assert _backed_up(tmp_path)["trials"] == {"a", "b", "c", "d"}
    (tmp_path / f"experiment_state-{later}.json").unlink()  # gone: the search goes on
    backup.after_step()
    assert _backed_up(tmp_path)["trials"] == {"a", "b", "c", "d"}


def test_a_torn_state_is_replaced_by_the_backup(tmp_path: Path) -> None:
    (tmp_path / BACKUP).mkdir()
    _state(tmp_path / BACKUP, ["a", "b"])
    _state(tmp_path, ["a", "b", "c"])
    (tmp_path / f"experiment_state-{SESSION}.json").write_text("")  # killed mid-write
    assert repair_state(tmp_path) is True
    assert known_trials(tmp_path) == {"a", "b"}


def test_an_intact_state_is_left_alone_but_deleted_checkpoints_come_back(tmp_path: Path) -> None:
    _state(tmp_path, ["a"])
    (tmp_path / "trial_a/checkpoint_000002").mkdir(parents=True)
    assert repair_state(tmp_path) is False
    assert known_trials(tmp_path) == {"a"}
    for index in (0, 1):  # Ray kept only the newest; an older saved state may name these
        progress = json.loads(
            (tmp_path / f"trial_a/checkpoint_{index:06d}/progress.json").read_text()
        )
        assert progress == {"reported": index + 1}


def test_ended_ledger_keeps_last_results_and_survives_a_torn_line(tmp_path: Path) -> None:
    record_ended(tmp_path, "a", {"epoch": 3, "acc_node0": 0.5, "config": {"x": 1}})
    with open(tmp_path / "ended_trials.jsonl", "a") as handle:
        handle.write('{"trial": "b", "res')
    assert ended_results(tmp_path) == {"a": {"epoch": 3, "acc_node0": 0.5}}


def test_a_trial_ended_again_on_resume_keeps_the_end_that_got_furthest(tmp_path: Path) -> None:
    # "a" ended at its rung (epoch 4) after Tune's last save, which had it at epoch 3: the
    # resumed search ends it again with that older result
    record_ended(tmp_path, "a", {"epoch": 4, "acc_node0": 0.8})
    record_ended(tmp_path, "a", {"epoch": 3, "acc_node0": 0.7})
    # "b" failed at epoch 2 and, retried on --resume, completed
    record_ended(tmp_path, "b", {"epoch": 2, "acc_node0": 0.4})
    record_ended(tmp_path, "b", {"epoch": 6, "acc_node0": 0.9})
    # "c" failed before its first epoch, twice: the later entry
    record_ended(tmp_path, "c", {"trial_id": "c", "attempt": 1})
    record_ended(tmp_path, "c", {"trial_id": "c", "attempt": 2})
    assert ended_results(tmp_path) == {
        "a": {"epoch": 4, "acc_node0": 0.8},
        "b": {"epoch": 6, "acc_node0": 0.9},
        "c": {"trial_id": "c", "attempt": 2},
    }
    # one trial's end, as a trial's start asks for it, parsing only the lines naming it
    for trial in ("a", "b", "c", "d"):
        assert ended_result(tmp_path, trial) == ended_results(tmp_path).get(trial)

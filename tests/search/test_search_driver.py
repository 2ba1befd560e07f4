"""Real searches (Ray Tune + Optuna, no mocks) on the embedded digits with tiny models.

Each search runs the CLI in a subprocess, as a user does; Ray starts and stops with it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from dcl_search.cli import main
from dcl_search.graphs import read_graph
from dcl_search.search import export_run, trial_table
from dcl_search.search._fidelity import MIN_GRAPHS, describe_fidelity
from dcl_search.search._optuna import RERUN_OF, TUNE_TRIAL_ID, optuna_storage
from dcl_search.search._store import ended_results
from dcl_search.training import CollaborativeTrainer

TINY_SPACE = """\
nodes: 2
target_model: mlp
models: [mlp, tiny_cnn]
edge_gates: [through, cutoff, linear, correct]
self_loop_gates: [through, cutoff, linear, correct]
allow_frozen: false
"""

ONE_GRAPH_SPACE = """\
nodes: 2
target_model: mlp
models: [mlp]
edge_gates: [through]
self_loop_gates: [through]
"""

EPOCHS = 6


def search_command(tmp: Path, space: str, *extra: str) -> list[str]:
    space_file = tmp / "space.yaml"
    space_file.write_text(space)
    return [
        sys.executable,
        "-m",
        "dcl_search",
        "search",
        "--dataset",
        "digits",
        "--space",
        str(space_file),
        "--epochs",
        str(EPOCHS),
        "--storage",
        str(tmp / "results"),
        "--name",
        "run",
        *extra,
    ]


def run_cli(
    command: list[str], cwd: Path, timeout: int = 400, home: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **({"HOME": str(home)} if home else {})}
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One 10-trial search shared by the tests that read its results."""
    tmp = tmp_path_factory.mktemp("search")
    command = search_command(
        tmp, TINY_SPACE, "--samples", "10", "--sampler", "random", "--top", "3"
    )
    return tmp / "results/run", run_cli(command, tmp)


def test_search_completes_and_asha_stops_trials_early(tiny_search) -> None:
    run_dir, result = tiny_search
    table = trial_table(run_dir)
    assert len(table) == 10
    assert (table["status"] == "pruned").sum() >= 1, table
    assert not list((run_dir / "graphs").glob("*/lock"))  # every graph free again
    assert (table["status"] == "complete").sum() >= 1, table
    assert set(table.loc[table["status"] == "pruned", "epochs"]) <= set(range(1, EPOCHS))
    assert "10 trials" in result.stdout and "stopped early by ASHA" in result.stdout
    header = result.stderr.splitlines()[0]
    assert f": 10 graphs of 2 nodes on digits, ASHA to {EPOCHS} epochs, " in header


def test_stopped_trials_are_pruned_in_the_optuna_study(tiny_search) -> None:
    run_dir, _ = tiny_search
    study = optuna.load_study(study_name="run", storage=optuna_storage(run_dir))
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    table = trial_table(run_dir)
    assert states.get("PRUNED", 0) == (table["status"] == "pruned").sum()
    assert states.get("COMPLETE", 0) == (table["status"] == "complete").sum()
    for trial in study.trials:  # TPE ranks pruned trials by their intermediate values
        last = max(trial.intermediate_values)
        assert trial.intermediate_values.keys() == set(range(1, last + 1))
        assert (last == EPOCHS) == (trial.state.name == "COMPLETE")


def test_every_epoch_reports_per_node_metrics(tiny_search) -> None:
    run_dir, _ = tiny_search
    sizes = set()
    for trial_dir in run_dir.glob("trial_*"):
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        last = rows[-1]
        nodes = last[
            "num_nodes"
        ]  # of the canonical graph: nodes that cannot teach node 0 are dropped
        sizes.add(nodes)
        expected = {f"acc_node{i}" for i in range(nodes)} | {f"loss_node{i}" for i in range(nodes)}
        assert expected | {"acc_ensemble", "graph_hash", "trained_epochs", "reused_epochs"} <= set(
            last
        )
        assert f"acc_node{nodes}" not in last and len(last["graph_hash"]) == 16
        assert last["num_nodes"] <= last["sampled_nodes"] == 2
    assert 2 in sizes


def _progress_checkpoints(trial_dir: Path) -> dict[str, int]:
    """The progress checkpoints Tune kept for a trial: folder name → epochs it counts."""
    return {
        path.parent.name: json.loads(path.read_text())["reported"]
        for path in trial_dir.glob("checkpoint_*/progress.json")
    }


def test_trials_checkpoint_only_where_asha_may_stop_them(tiny_search) -> None:
    # trials take one only at ASHA's rungs (grace 1, factor 2: epochs 1, 2 and 4) and at the
    # last epoch, a few bytes each; Tune numbers them from 0 and keeps them all (keeping fewer
    # made it save its whole experiment state after each)
    run_dir, _ = tiny_search
    table = trial_table(run_dir)
    assert table["epochs"].max() == EPOCHS  # some trials passed every rung
    for trial, epochs in zip(table["trial"], table["epochs"], strict=True):
        taken = [m for m in (1, 2, 4, EPOCHS) if m <= epochs]
        expected = {f"checkpoint_{i:06d}": epoch for i, epoch in enumerate(taken)}
        assert _progress_checkpoints(run_dir / f"trial_{trial}") == expected, (trial, epochs)


def _tensorboard_scalars(trial_dir: Path) -> dict[tuple[str, int], float]:
    """(tag, step) → value of the ``ray/tune/`` scalars in a trial's TensorBoard event files
    (TFRecords: length, its CRC, an Event protocol buffer, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    for path in trial_dir.glob("events.out.tfevents.*"):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.tag.startswith("ray/tune/"):
                    assert (value.tag, event.step) not in scalars
                    scalars[value.tag, event.step] = value.simple_value
    return scalars


def test_tensorboard_shows_every_number_of_every_epoch_under_tunes_tags(tiny_search) -> None:
    # what Tune's own logger writes: every number of a result but a few of Tune's (bools
    # included), at step training_iteration; one event per result instead of one per number
    run_dir, _ = tiny_search
    not_logged = {"config", "pid", "timestamp", "time_total_s", "training_iteration"}
    for trial_dir in run_dir.glob("trial_*"):
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        expected = {
            (f"ray/tune/{key}", row["training_iteration"]): float(value)
            for row in rows
            for key, value in row.items()
            if key not in not_logged and isinstance(value, (int, float))
        }
        assert {("ray/tune/acc_node0", len(rows)), ("ray/tune/done", 1)} <= expected.keys()
        scalars = _tensorboard_scalars(trial_dir)
        assert scalars.keys() == expected.keys(), trial_dir
        for key, value in expected.items():
            assert scalars[key] == pytest.approx(value, rel=1e-6), key


class _Trial:
    """What Tune's loggers read of a trial (a dict key: hashed by identity)."""

    def __init__(self, folder: Path) -> None:
        self.local_path, self.evaluated_params = str(folder), {}

    def init_local_path(self) -> None:
        pass


def test_the_tensorboard_logger_writes_what_tunes_own_logger_writes(tmp_path: Path) -> None:
    # both real, on the same results; Tune's wrote an event per number and forced each result
    # to disk (2.6 ms of the driver per epoch against 0.33, benchmarks/tensorboard_logger.py)
    from ray.tune.logger import TBXLoggerCallback

    from dcl_search.search._tensorboard import TensorBoardLogger

    results = [
        {"acc_node0": 0.5 + epoch / 10, "epoch": epoch, "done": epoch == 3, "key": "abc",
         "training_iteration": epoch, "timestamp": 1796313412, "config": {"n": 2},
         "nested": {"a": 1.5}, "nan": float("nan"), "checkpoint_dir_name": None}
        for epoch in (1, 2, 3)
    ]  # fmt: skip
    scalars = {}
    for logger in (TBXLoggerCallback(), TensorBoardLogger()):
        folder = tmp_path / type(logger).__name__
        folder.mkdir()
        trial = _Trial(folder)
        for result in results:
            logger.log_trial_result(result["training_iteration"], trial, result)
        logger.log_trial_end(trial)
        scalars[type(logger).__name__] = _tensorboard_scalars(folder)
    assert scalars["TensorBoardLogger"] == scalars["TBXLoggerCallback"]
    assert scalars["TensorBoardLogger"] == {
        **{("ray/tune/acc_node0", e): pytest.approx(0.5 + e / 10) for e in (1, 2, 3)},
        **{("ray/tune/epoch", e): e for e in (1, 2, 3)},
        **{("ray/tune/done", e): float(e == 3) for e in (1, 2, 3)},
        **{("ray/tune/nested/a", e): 1.5 for e in (1, 2, 3)},
    }


DRIVER_WITHOUT_TORCH = """\
import sys

from dcl_search.cli import main

status = main(sys.argv[1:])
print("driver imported torch:", "torch" in sys.modules)
sys.exit(status)
"""


def test_the_driver_imports_no_torch_the_trials_do(tmp_path: Path) -> None:
    # torch takes 2 s to import, at the start of every search: only Ray's workers train
    command = search_command(tmp_path, ONE_GRAPH_SPACE, "--samples", "2", "--epochs", "2")
    result = run_cli([sys.executable, "-c", DRIVER_WITHOUT_TORCH, *command[3:]], tmp_path)
    assert "driver imported torch: False" in result.stdout
    table = trial_table(tmp_path / "results/run")
    assert len(table) == 2 and table["acc_node0"].min() > 0.2  # trained, by the workers


def test_the_driver_frees_the_graph_an_ended_trial_held(tiny_search, tmp_path: Path) -> None:
    # a trial killed mid-epoch cannot free its graph itself: the driver does, when Tune says
    # it ended, from the graph its results name, or from every folder if it reported none
    from types import SimpleNamespace

    from dcl_search.search import SearchSettings
    from dcl_search.search._driver import _callbacks
    from dcl_search.search._store import GraphStore

    run_dir, _ = tiny_search
    settings = dataclasses.replace(SearchSettings.load(run_dir), storage=str(tmp_path), name="run")
    settings.run_dir.mkdir()
    release = next(c for c in _callbacks(settings, print) if type(c).__name__ == "ReleaseLocks")
    store = GraphStore(settings.run_dir / "graphs")
    assert store.acquire("k1", "t1") and store.acquire("k2", "t2") and store.acquire("k3", "t3")
    release.on_trial_complete(0, [], SimpleNamespace(trial_id="t1", last_result={"key": "k1"}))
    release.on_trial_error(0, [], SimpleNamespace(trial_id="t2", last_result=None))
    assert (store.owner("k1"), store.owner("k2"), store.owner("k3")) == (None, None, "t3")
    assert set(ended_results(settings.run_dir)) == {"t1", "t2"}


def test_leaderboard_has_one_row_per_trial(tiny_search) -> None:
    run_dir, _ = tiny_search
    board = pd.read_csv(run_dir / "export/leaderboard.csv")
    assert len(board) == 10 and board["trial"].is_unique
    assert {"graph_hash", "models", "gates", "epochs", "acc_node0", "acc_node1", "status"} <= set(
        board.columns
    )
    complete = board[board["status"] == "complete"]
    assert board.iloc[0]["acc_node0"] == complete["acc_node0"].max()


def _check_rungs_against_results(run_dir: Path, rungs: pd.DataFrame) -> int:
    """Recounts ``rungs.csv`` from the trials' result.json (one curve per distinct graph, the
    union of its trials' epochs: a duplicate that ASHA stopped early does not shorten the curve
    of the graph an earlier trial finished); returns how many rows had a correlation to check."""
    board = pd.read_csv(run_dir / "export/leaderboard.csv")
    curves: dict[str, dict[int, float]] = {}
    for row in board[board["status"] != "error"].itertuples():
        lines = (run_dir / f"trial_{row.trial}/result.json").read_text().splitlines()
        curve = curves.setdefault(row.key, {})
        for result in map(json.loads, lines):
            assert curve.setdefault(result["epoch"], result["acc_node0"]) == result["acc_node0"]
    finished = {key: c for key, c in curves.items() if EPOCHS in c}
    checked = 0
    for rung in rungs.itertuples():
        assert rung.reached == sum(rung.epoch in c for c in curves.values())
        assert rung.graphs == len(finished)
        if len(finished) >= MIN_GRAPHS and not math.isnan(rung.spearman):
            early = pd.Series({k: c[rung.epoch] for k, c in finished.items()})
            final = pd.Series({k: c[EPOCHS] for k, c in finished.items()})
            assert rung.spearman == pytest.approx(early.rank().corr(final.rank()))
            assert rung.regret == pytest.approx(final.max() - final[early == early.max()].mean())
            checked += 1
    return checked


def test_the_export_measures_how_well_each_rung_predicted_the_last_epoch(tiny_search) -> None:
    run_dir, result = tiny_search
    rungs = pd.read_csv(run_dir / "export/rungs.csv")
    assert rungs["epoch"].tolist() == [1, 2, 4]  # grace period 1, reduction factor 2, 6 epochs
    _check_rungs_against_results(run_dir, rungs)
    line = [text for text in result.stdout.splitlines() if text.startswith("early rungs")]
    assert line == [describe_fidelity(rungs, EPOCHS, run_dir / "export/rungs.csv")]


def test_an_export_while_tune_writes_a_result_line_skips_the_torn_line(
    tiny_search, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_search[0], run_dir)
    before = trial_table(run_dir)
    (run_dir / "ended_trials.jsonl").unlink()  # the table then reads the trials' result.json
    for path in run_dir.glob("trial_*/result.json"):
        with path.open("a") as file:
            file.write('{"epoch": 99, "acc_no')
    after = trial_table(run_dir)
    assert after["epochs"].tolist() == before["epochs"].tolist()
    assert after["acc_node0"].tolist() == before["acc_node0"].tolist()
    export_run(run_dir, top=2)
    assert (run_dir / "export/rungs.csv").read_text() == (
        tiny_search[0] / "export/rungs.csv"
    ).read_text()


def test_a_search_that_stops_nothing_measures_its_rungs_over_every_graph(tmp_path: Path) -> None:
    command = search_command(
        tmp_path, TINY_SPACE, "--samples", "12", "--sampler", "random", "--grace-period", "6"
    )
    result = run_cli(command, tmp_path)
    run_dir = tmp_path / "results/run"
    assert set(trial_table(run_dir)["status"]) == {"complete"}
    rungs = pd.read_csv(run_dir / "export/rungs.csv")
    # no ASHA rung below the last epoch: measured where grace period 1 would put them
    assert rungs["epoch"].tolist() == [1, 2, 4]
    distinct = trial_table(run_dir)["key"].nunique()
    assert rungs["reached"].tolist() == rungs["graphs"].tolist() == [distinct] * 3
    assert distinct >= MIN_GRAPHS and _check_rungs_against_results(run_dir, rungs) > 0, rungs
    assert f"early rungs against epoch {EPOCHS} ({distinct} graphs reached it): " in result.stdout


def test_exported_graphs_load_in_networkx_and_train(tiny_search, tmp_path: Path) -> None:
    run_dir, _ = tiny_search
    exported = sorted((run_dir / "export").glob("rank*.json"))
    assert len(exported) == 3 and all(
        p.with_suffix(".png").read_bytes()[:4] == b"\x89PNG" for p in exported
    )
    data = json.loads(exported[0].read_text())
    graph = nx.node_link_graph(data, edges="edges")
    assert graph.nodes[0]["model"] == "mlp" and data["graph"]["search"]["rank"] == 1
    assert read_graph(exported[0]).number_of_nodes() == graph.number_of_nodes()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcl_search",
            "train",
            str(exported[0]),
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "t"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "t/summary.json").read_text())["epochs"] == 2


def test_the_export_command_writes_what_the_search_exported(tiny_search, tmp_path: Path) -> None:
    run_dir, _ = tiny_search
    out = tmp_path / "exported"
    command = [sys.executable, "-m", "dcl_search", "export", str(run_dir), "--top", "2"]
    result = run_cli([*command, "--out", str(out)], tmp_path)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "leaderboard.csv"), pd.read_csv(run_dir / "export/leaderboard.csv")
    )
    ours = sorted(p.name for p in out.glob("rank*"))
    searched = sorted(p.name for p in (run_dir / "export").glob("rank*"))
    assert len(ours) == 4 and ours == searched[:4]  # rank1, rank2: JSON + PNG each
    assert f"wrote {out / 'leaderboard.csv'}" in result.stdout
    rungs = pd.read_csv(out / "rungs.csv")
    pd.testing.assert_frame_equal(rungs, pd.read_csv(run_dir / "export/rungs.csv"))
    assert result.stdout.splitlines()[-1] == describe_fidelity(rungs, EPOCHS, out / "rungs.csv")


def test_an_export_replaces_an_earlier_exports_rank_files(tiny_search, tmp_path: Path) -> None:
    run_dir, _ = tiny_search
    out = tmp_path / "exported"
    out.mkdir()
    stale = [
        "rank1-0123456789abcdef.json",
        "rank1-0123456789abcdef.png",
        "rank3-fedcba9876543210.json",
    ]
    kept = ["notes.txt", "rank1-mine.json"]  # not an export's names: the user's own files
    for name in stale + kept:
        (out / name).write_text("{}")
    _, written = export_run(run_dir, 2, out)
    expected = {p.name for p in written} | {p.with_suffix(".png").name for p in written}
    assert len(expected) == 4
    assert {p.name for p in out.iterdir()} == expected | set(kept) | {
        "leaderboard.csv",
        "rungs.csv",
    }


def test_the_reeval_command_retrains_the_best_graph_against_the_baselines(
    tiny_search, tmp_path: Path
) -> None:
    run_dir, _ = tiny_search
    copy = tmp_path / "run"  # the shared run stays as the other tests read it
    shutil.copytree(run_dir, copy)
    command = [sys.executable, "-m", "dcl_search", "reeval", str(copy), "--top", "1"]
    result = run_cli([*command, "--seeds", "1"], tmp_path)
    best = pd.read_csv(run_dir / "export/leaderboard.csv").iloc[0]["graph_hash"]
    summary = pd.read_csv(copy / "reeval/summary.csv")
    assert sorted(summary["label"]) == ["dml:2", "independent", f"rank1-{best[:8]}"]
    assert (summary["seeds"] == 1).all()
    assert len(pd.read_csv(copy / "reeval/runs.csv")) == 3
    assert "val gain vs independent" in result.stdout


def test_a_duplicate_graph_is_not_trained_twice(tmp_path: Path) -> None:
    # The space holds exactly one graph, so every trial after the first is a duplicate.
    run_cli(
        search_command(tmp_path, ONE_GRAPH_SPACE, "--samples", "4", "--grace-period", str(EPOCHS)),
        tmp_path,
    )
    table = trial_table(tmp_path / "results/run")
    assert len(table) == 4 and table["key"].nunique() == 1
    assert table["trained_epochs"].sum() == EPOCHS, table[
        ["trial", "trained_epochs", "reused_epochs"]
    ]
    assert (table["reused_epochs"] == EPOCHS).sum() == 3
    assert len(list((tmp_path / "results/run/graphs").iterdir())) == 1
    # a replayed epoch is checkpointed like a trained one, at the milestones only: here the
    # last epoch (the grace period), so the trials that replayed 6 epochs took one checkpoint
    for trial in table["trial"]:
        trial_dir = tmp_path / f"results/run/trial_{trial}"
        assert _progress_checkpoints(trial_dir) == {"checkpoint_000000": EPOCHS}


def test_a_search_whose_every_trial_fails_says_why_and_exits_1(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "big.yaml"
    recipe.write_text("epochs: 2\nbatch_size: 4096\n")  # more than the digits training split
    command = search_command(
        tmp_path, ONE_GRAPH_SPACE, "--samples", "2", "--recipe", str(recipe), "--max-failures", "0"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    run_dir = tmp_path / "results/run"
    first = sorted(run_dir.glob("trial_*"))[0]
    assert last == (
        f"dcl-search: all 2 trials failed; trial {first.name.removeprefix('trial_')}: "
        "the training split has 1295 images, fewer than one batch of 4096 "
        f"(full traceback: {first / 'error.txt'})"
    )
    table = trial_table(run_dir)
    assert list(table["status"]) == ["error", "error"]
    assert table["acc_node0"].isna().all()
    # nothing to re-evaluate: one line, before Ray starts (it was an IndexError)
    assert main(["reeval", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dcl-search: error: {run_dir}: no trial of this search has finished an epoch yet"
    )


# "[k/N] <id> done|stopped|FAILED after ...": not Ray's own log lines, which also start with "["
PROGRESS_LINE = re.compile(r"\[(\d+)/(\d+)\] (\w+) (?:done|stopped|FAILED) after ")


def _progress(text: str) -> list[re.Match]:
    return [m for line in text.splitlines() if (m := PROGRESS_LINE.match(line))]


def _ended_trials(log: Path) -> list[str]:
    """Trial ids the driver printed as ended."""
    if not log.exists():
        return []
    return [m.group(3) for m in _progress(log.read_text())]


def test_a_killed_search_resumes_without_losing_or_retraining_trials(tmp_path: Path) -> None:
    command = search_command(
        tmp_path, TINY_SPACE, "--samples", "12", "--sampler", "random", "--concurrency", "1"
    )
    log = tmp_path / "driver.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=handle, stderr=handle, env=env, start_new_session=True
        )
    deadline = time.time() + 300
    run_dir = tmp_path / "results/run"
    while time.time() < deadline and len(_ended_trials(log)) < 4 and process.poll() is None:
        time.sleep(0.05)
    # Tune saves its state every 10 s or more: some of these trials ended after its last save
    os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    process.wait()
    ended = _ended_trials(log)
    assert 4 <= len(ended) < 12, log.read_text()[-2000:]
    # Tune writes result.json in a staging folder on the driver and copies it into the run
    # folder now and then: a trial that ended just before the kill may have none there yet.
    # The driver's ledger of ended trials, written before the progress line, has them all.
    ledger = ended_results(run_dir)
    assert set(ended) <= set(ledger)
    files = {t: run_dir / f"trial_{t}/result.json" for t in ended}
    before = {t: path.read_text() for t, path in files.items() if path.exists()}

    result = run_cli(
        [sys.executable, "-m", "dcl_search", "search", "--resume", str(run_dir)], tmp_path
    )
    table = trial_table(run_dir)
    assert len(table) == 12, table[["trial", "status", "epochs"]]
    assert set(ended) <= set(table["trial"])
    for trial, text in before.items():  # neither lost nor trained again
        after = (run_dir / f"trial_{trial}/result.json").read_text()
        assert after.startswith(text)
        # one that ended after Tune's last save ends again with its noted result, once
        again = [json.loads(line) for line in after[len(text) :].splitlines()]
        assert len(again) <= 1
        for row in again:
            assert row["epoch"] == ledger[trial]["epoch"]
            assert row["acc_node0"] == ledger[trial]["acc_node0"]
            assert row["trained_epochs"] == ledger[trial]["trained_epochs"]
    rows = table.set_index("trial")
    for trial in ended:  # each keeps the last result it ended with
        assert rows.loc[trial, "epochs"] == ledger[trial]["epoch"]
        assert rows.loc[trial, "acc_node0"] == ledger[trial]["acc_node0"]
    study = optuna.load_study(study_name="run", storage=optuna_storage(run_dir))
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    # a trial running at the kill that Tune's last save never knew: its graph ran again
    lost = [t for t in study.trials if t.user_attrs.get(TUNE_TRIAL_ID) not in set(table["trial"])]
    for trial in lost:
        assert trial.state.name == "FAIL"
        reruns = [t for t in study.trials if t.user_attrs.get(RERUN_OF) == trial.number]
        if TUNE_TRIAL_ID not in trial.user_attrs:  # killed while sampled: it never ran
            assert reruns == []
            continue
        (again,) = reruns
        assert again.params == trial.params and again.user_attrs[TUNE_TRIAL_ID] in rows.index
    print(f"{len(lost)} lost at the kill")
    assert "12 trials" in result.stdout
    # the resumed driver counts on from the restored trials instead of from 1
    counted = [f"{m.group(1)}/{m.group(2)}" for m in _progress(result.stderr)]
    assert counted and counted[-1] == "12/12", result.stderr[-2000:]
    numbers = [int(c.split("/")[0]) for c in counted]
    assert numbers == list(range(numbers[0], 13)) and numbers[0] > 1, counted


def _as_if_running(run_dir: Path, trial: str, results: bool = True) -> None:
    """Rewrites Tune's saved state as if saved while ``trial`` ran; without ``results`` as if
    saved during its first epoch: no result, no checkpoint (Ray's classes build the record)."""
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune import CheckpointConfig
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    state_file = max(run_dir.glob("experiment_state-*.json"), key=lambda p: p.name)
    state = json.loads(state_file.read_text())
    for entry in state["trial_data"]:
        saved = json.loads(entry[0])
        if saved["trial_id"] != trial:
            continue
        entry[0] = json.dumps({**saved, "status": "RUNNING"})
        if not results:
            metadata = _TrainingRunMetadata()
            metadata.checkpoint_manager = _CheckpointManager(CheckpointConfig(num_to_keep=1))
            entry[1] = metadata.get_json_state()
            for folder in (run_dir / f"trial_{trial}").glob("checkpoint_*"):
                shutil.rmtree(folder)
    state_file.write_text(json.dumps(state))


def _as_if_never_saved(run_dir: Path, trial: str) -> None:
    """Rewrites Tune's saved state, its searcher's and its sample count as if saved before
    ``trial`` was suggested, and removes the trial's folder: only the driver's ledger has it."""
    import pickle

    def latest(pattern: str) -> Path:
        return max(run_dir.glob(pattern), key=lambda p: p.name)

    state_file = latest("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    state["trial_data"] = [e for e in state["trial_data"] if json.loads(e[0])["trial_id"] != trial]
    state_file.write_text(json.dumps(state))
    searcher_file = latest("searcher-state-*.pkl")
    searcher = pickle.loads(searcher_file.read_bytes())
    del searcher["_ot_trials"][trial]
    searcher["_completed_trials"].discard(trial)
    searcher_file.write_bytes(pickle.dumps(searcher))
    generator_file = latest("search_gen_state-*.json")  # a pickle despite its name
    generator = pickle.loads(generator_file.read_bytes())
    generator["counter"] -= 1
    generator["finished"] = False
    generator_file.write_bytes(pickle.dumps(generator))
    shutil.rmtree(run_dir / f"trial_{trial}")


def test_trials_that_ended_after_tunes_last_save_end_with_the_noted_result_on_resume(
    tmp_path: Path,
) -> None:
    # A driver killed after a trial ended, but before Tune saved its state again, may leave a
    # state saved while that trial ran its first epoch: Tune knows it, with no result. The
    # driver's ledger has its end. Built here from a finished search: its last trial so, a
    # trial ASHA stopped made unfinished (out of the ledger, running in Tune's state), so that
    # there is something to resume, and its first trial as if it had failed before its first
    # epoch (no result in the ledger either). The fourth ended after a save made while it ran,
    # one with its results so far and a checkpoint. The fifth was suggested after the last save
    # and ended before the kill: Tune, its searcher and its count of samples never knew it.
    run_cli(
        search_command(
            tmp_path,
            TINY_SPACE,
            "--samples",
            "5",
            "--epochs",
            "2",
            "--sampler",
            "random",
            "--concurrency",
            "1",
        ),  # fmt: skip
        tmp_path,
    )
    run_dir = tmp_path / "results/run"
    ledger_file = run_dir / "ended_trials.jsonl"
    lines = ledger_file.read_text().splitlines(keepends=True)
    ends = [json.loads(line) for line in lines]
    last = ends[-1]["trial"]
    stopped = next(e["trial"] for e in ends if e["result"]["epoch"] < 2)
    failed = ends[0]["trial"]  # noted as failed before its first epoch: it must run again
    known, unsaved = sorted({e["trial"] for e in ends} - {stopped, last, failed})
    noted = ended_results(run_dir)
    _as_if_never_saved(run_dir, unsaved)
    for trial in (last, failed):
        _as_if_running(run_dir, trial, results=False)
    for trial in (stopped, known):
        _as_if_running(run_dir, trial)
    kept = [line for line in lines if f'"{stopped}"' not in line and f'"{failed}"' not in line]
    kept.append(json.dumps({"trial": failed, "result": {"trial_id": failed}}) + "\n")
    ledger_file.write_text("".join(kept))
    shutil.rmtree(run_dir / ".tune-state-backup", ignore_errors=True)
    before = {t: (run_dir / f"trial_{t}/result.json").read_text() for t in (last, known)}

    # it failed: "Trial returned a result which did not include the specified metric(s)"
    result = run_cli(
        [sys.executable, "-m", "dcl_search", "search", "--resume", str(run_dir)], tmp_path
    )
    assert "5 trials" in result.stdout
    rows = trial_table(run_dir).set_index("trial")
    assert len(rows) == 5 and rows.loc[stopped, "epochs"] == 2  # resumed to the end
    # the unknown one counts as one of the 5 samples: no sixth graph was sampled in its place
    assert len(optuna.load_study(study_name="run", storage=optuna_storage(run_dir)).trials) == 5
    assert rows.loc[unsaved, "epochs"] == noted[unsaved]["epoch"]
    assert rows.loc[unsaved, "acc_node0"] == noted[unsaved]["acc_node0"]
    assert rows.loc[unsaved, "status"] in {"complete", "pruned"}
    assert unsaved in (run_dir / "export/leaderboard.csv").read_text()
    # the resumed driver counts it among the ended trials
    counted = [f"{m.group(1)}/{m.group(2)}" for m in _progress(result.stderr)]
    assert counted and counted[-1] == "5/5", result.stderr[-2000:]
    assert rows.loc[failed, "epochs"] == 2 and rows.loc[failed, "status"] == "complete"
    same = ("epoch", "acc_node0", "trained_epochs", "started_at")  # not trained again
    for trial in (last, known):
        assert rows.loc[trial, "epochs"] == noted[trial]["epoch"]
        assert rows.loc[trial, "acc_node0"] == noted[trial]["acc_node0"]
        assert rows.loc[trial, "status"] in {"complete", "pruned"}
        after = (run_dir / f"trial_{trial}/result.json").read_text()
        # Tune's record: begun anew where its state knew no checkpoint, else kept; either way
        # the noted result is added once
        kept = before[trial] if trial == known else ""
        assert after.startswith(kept)
        (again,) = [json.loads(line) for line in after[len(kept) :].splitlines()]
        assert {k: again[k] for k in same} == {k: noted[trial][k] for k in same}


def test_a_search_finds_the_default_data_folder_although_tune_runs_trials_elsewhere(
    tmp_path: Path,
) -> None:
    """Tune runs each trial in its own folder: ./data (the default) must mean the user's."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 48), ("test", 8)):
        for label, name in enumerate(("cat", "dog")):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (8, 8, 3)) + 120 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    command = search_command(
        tmp_path, ONE_GRAPH_SPACE, "--dataset", "imagefolder", "--recipe", "demo",
        "--samples", "1", "--epochs", "1", "--storage", "results",
    )  # fmt: skip
    run_cli(command, tmp_path)  # relative storage and data folders, as a user types them
    run_dir = tmp_path / "results/run"
    assert list(trial_table(run_dir)["status"]) == ["complete"]
    saved = json.loads((run_dir / "search.json").read_text())
    assert (saved["storage"], saved["data_dir"]) == (
        str(tmp_path.resolve() / "results"),
        str(tmp_path.resolve() / "data"),
    )


STATUS_LINE = re.compile(
    r"\.\.\. (\d+) of 2 trials ended, best (-|\d+\.\d\d%); running \(epoch, acc_node0\): "
    r"(\w{8} \d+/30 \d+\.\d\d%(?:, \w{8} \d+/30 \d+\.\d\d%)*)"
)


def test_long_trials_show_a_status_line_of_the_running_ones(tmp_path: Path) -> None:
    command = search_command(
        tmp_path, TINY_SPACE, "--samples", "2", "--epochs", "30", "--grace-period", "30",
        "--status-every", "0.2",
    )  # fmt: skip
    result = run_cli(command, tmp_path)
    statuses = [STATUS_LINE.fullmatch(line) for line in result.stderr.splitlines()]
    statuses = [match for match in statuses if match]
    assert statuses, result.stderr[-3000:]
    first = statuses[0]
    assert first.group(1) == "0" and first.group(2) == "-"
    ids = set(trial_table(tmp_path / "results/run")["trial"])
    for match in statuses:
        for entry in match.group(3).split(", "):
            trial, epochs, _ = entry.split()
            assert trial in ids and 1 <= int(epochs.split("/")[0]) <= 30
    assert json.loads((tmp_path / "results/run/search.json").read_text())["status_every"] == 0.2


def test_ctrl_c_says_the_search_was_interrupted_and_resume_finishes_it(tmp_path: Path) -> None:
    """Tune catches Ctrl-C and returns as if done; the command must not claim it finished."""
    command = search_command(
        tmp_path, TINY_SPACE, "--samples", "2", "--epochs", "20", "--grace-period", "20",
        "--status-every", "0.1",
    )  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "driver.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=handle, text=True, env=env,
            start_new_session=True,
        )  # fmt: skip
    run_dir = tmp_path / "results/run"
    deadline = time.time() + 300
    while time.time() < deadline and not re.search(
        r"running \(epoch, \w+\): \w+ \d+/20", log.read_text()
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, _ = process.communicate(timeout=300)
    err = log.read_text()
    assert process.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"interrupted after [01] of 2 trials; continue with: dcl-search search --resume {re.escape(str(run_dir))}",
        last,
    ), last
    # the trials Ctrl-C stopped are neither ASHA's stops nor finished
    leaderboard = pd.read_csv(run_dir / "export/leaderboard.csv")
    short = leaderboard[leaderboard["epochs"] < 20]
    assert len(short) >= 1 and set(short["status"]) == {"unfinished"}, leaderboard
    assert f"0 stopped early by ASHA, 0 failed, {len(short)} unfinished)" in out

    run_cli([sys.executable, "-m", "dcl_search", "search", "--resume", str(run_dir)], tmp_path)
    table = trial_table(run_dir)
    assert list(table["status"]) == ["complete", "complete"]
    assert list(table["epochs"]) == [20, 20]

    # once more: nothing is left, so Tune (and its state files) are not touched
    states = {p: p.stat().st_mtime_ns for p in run_dir.glob("experiment_state-*.json")}
    again = run_cli(
        [sys.executable, "-m", "dcl_search", "search", "--resume", str(run_dir)], tmp_path
    )
    assert again.stderr.splitlines()[0] == (
        f"search {run_dir} has finished all 2 trials already; nothing to resume"
    )
    assert "search run: 2 trials (2 complete, 0 stopped early by ASHA, 0 failed)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in run_dir.glob("experiment_state-*.json")} == states


def test_a_space_mixing_heads_intra_models_and_gates_searches_and_its_winner_trains(
    tmp_path: Path,
) -> None:
    space = (Path(__file__).resolve().parents[2] / "search_spaces/collab_demo.yaml").read_text()
    command = search_command(
        tmp_path, space, "--samples", "6", "--sampler", "random", "--top", "6", "--seed", "1",
        "--label-noise", "0.4",
    )  # fmt: skip
    run_cli(command, tmp_path)
    run_dir = tmp_path / "results/run"
    settings = json.loads((run_dir / "search.json").read_text())
    assert settings["label_noise"] == {"fraction": 0.4, "mode": "epoch"}
    for checkpoint in (run_dir / "graphs").glob("*/checkpoint.pt"):  # every trial trained noisy
        identity = torch.load(checkpoint, weights_only=False)["identity"]
        assert identity["label_noise"] == [0.4, "epoch"]
    board = pd.read_csv(run_dir / "export/leaderboard.csv")
    assert len(board) == 6
    with_options = board[board["models"].str.contains(r"\[", regex=True)]
    assert len(with_options) >= 1, board["models"].tolist()  # e.g. tiny_cnn_fc[h2@layer2+mid]
    exported = sorted((run_dir / "export").glob("rank*.json"))
    winner = next(
        p for p in exported
        if any("heads" in n or "intra" in n for n in json.loads(p.read_text())["nodes"])
    )  # fmt: skip
    graph = read_graph(winner)
    assert any(graph.nodes[n].get("options") for n in graph)
    result = subprocess.run(
        [sys.executable, "-m", "dcl_search", "train", str(winner), "--epochs", "2",
         "--out", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "t/summary.json").read_text())
    assert summary["epochs"] == 2
    assert (
        json.loads((tmp_path / "t/graph.json").read_text())["nodes"]
        == json.loads(winner.read_text())["nodes"]
    )


MEMORY_PROBE = """\
import gc, os
import torch
from dcl_search.training import _trainer

def _probed(init):
    def probe(self, *args, **kwargs):
        gc.collect()
        objects = gc.get_objects()
        tensors = sum(1 for o in objects if torch.is_tensor(o))
        params = sum(o.numel() for o in objects if isinstance(o, torch.nn.Parameter))
        with open("PROBE_LOG", "a") as log:
            log.write(f"{os.getpid()} {tensors} {params}\\n")
        init(self, *args, **kwargs)
    probe.probed = True
    return probe

if not getattr(_trainer.CollaborativeTrainer.__init__, "probed", False):
    _trainer.CollaborativeTrainer.__init__ = _probed(_trainer.CollaborativeTrainer.__init__)
"""


def test_a_reused_worker_frees_each_trials_models_before_the_next(tmp_path: Path) -> None:
    """Tune reuses one worker for trial after trial; what a trial held (models, optimizer state,
    its tensors on the device) must be gone when the next starts, or a long search on a GPU runs
    out of memory. ASHA stops most of these trials inside a report, the path most likely to
    leave a reference behind (an exception's frames)."""
    probe, log = tmp_path / "probe.py", tmp_path / "probe.log"
    probe.write_text(MEMORY_PROBE.replace("PROBE_LOG", str(log)))
    command = search_command(
        tmp_path, TINY_SPACE, "--samples", "5", "--sampler", "random", "--concurrency", "1",
        "--plugin", str(probe),
    )  # fmt: skip
    run_cli(command, tmp_path)
    rows = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    # the search's own export: trial_table here would load the probe into this process too
    table = pd.read_csv(tmp_path / "results/run/export/leaderboard.csv")
    assert (table["status"] == "pruned").sum() >= 1, table  # some trials ended inside a report
    # one worker built a trainer for every distinct graph (and again to go on with one)
    assert len({pid for pid, _, _ in rows}) == 1 and len(rows) >= table["key"].nunique() >= 3
    assert all(params == 0 for _, _, params in rows), rows  # no earlier trial's parameters
    assert len({tensors for _, tensors, _ in rows}) == 1, rows  # only the cached dataset
    assert not hasattr(CollaborativeTrainer.__init__, "probed")  # not loaded into the tests


PRESTARTED_WORKERS = """\
import json, os, sys, time
from pathlib import Path

from ray.tune.execution.class_cache import DEFAULT_ENV_VARS

from dcl_search.search import SearchSettings, init_ray, run_search, search_space_from_dict
from dcl_search.training import Recipe

def children(pid):  # conftest's running_processes, in the fresh interpreter this script runs in
    found = set()
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry))
    return found

def idle_workers():
    return {
        pid for raylet in children(os.getpid()) for pid in children(raylet)
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::IDLE")
    }

init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="trial")
# Ray prestarts one per CPU, not all at once: wait until the set has held still for a second
prestarted, still_since, deadline = set(), time.monotonic(), time.monotonic() + 60
while time.monotonic() < deadline and not (prestarted and time.monotonic() - still_since > 1):
    now = idle_workers()
    if now != prestarted:
        prestarted, still_since = now, time.monotonic()
    time.sleep(0.1)
prestarted = sorted(prestarted)
space = {"nodes": 2, "target_model": "mlp", "models": ["mlp"], "edge_gates": ["through"],
         "self_loop_gates": ["through"]}
settings = SearchSettings(
    name="run", storage=sys.argv[1], space=search_space_from_dict(space), recipe=Recipe(epochs=2),
    samples=2, sampler="random", concurrency=1, status_every=0,
)
run_search(settings)
trials = [
    json.loads(path.read_text().splitlines()[0])["pid"]
    for path in Path(sys.argv[1], "run").glob("trial_*/result.json")
]
print(json.dumps({"prestarted": prestarted, "trials": trials, "tune_env": DEFAULT_ENV_VARS}))
"""


def test_trials_run_in_the_workers_ray_prestarts(tmp_path: Path) -> None:
    """Ray starts a worker per CPU with itself; a trial that waited for a new one would pay
    Python's and Ray's start again (0.5 s of the 2-core demo's start). Tune's default runtime
    environment for its actors would force that; the search drops it while it runs."""
    result = subprocess.run(
        [sys.executable, "-c", PRESTARTED_WORKERS, str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["prestarted"] and len(seen["trials"]) == 2, seen
    assert set(seen["trials"]) <= set(seen["prestarted"]), seen
    assert seen["tune_env"] == {"PL_DISABLE_FORK": "1"}  # Tune's own default is back

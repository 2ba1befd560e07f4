"""The README's promises, run as a user would: train from the command line, kill, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dcl_search.training._trainer import _cpp_compiler

REPO = Path(__file__).resolve().parents[2]


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcl_search", "train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("graph", ["dml:2", "independent"])
def test_presets_reach_90_percent_on_digits_within_two_minutes(graph: str, tmp_path: Path) -> None:
    started = time.perf_counter()
    result = _train(
        graph,
        "--dataset",
        "digits",
        "--recipe",
        str(REPO / "trainers/demo.yaml"),
        "--out",
        "run",
        cwd=tmp_path,
    )
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["val"]["acc_node0"] >= 0.90
    assert wall <= 120, f"{graph} took {wall:.0f} s"
    assert summary["epochs"] == 30 and summary["dataset"]["name"] == "digits"
    assert "device cpu in fp32;" in result.stderr and summary["precision"] == "fp32"  # pinned
    metrics = pd.read_csv(tmp_path / "run/metrics.csv")
    nodes = 2 if graph.startswith("dml") else 1
    expected = [
        "epoch",
        *[f"acc_node{i}" for i in range(nodes)],
        "acc_ensemble",
        *[f"loss_node{i}" for i in range(nodes)],
        "lr",
        "seconds",
    ]
    assert list(metrics.columns) == expected
    assert metrics["epoch"].tolist() == list(range(1, 31))
    assert metrics["acc_node0"].iloc[-1] == pytest.approx(summary["val"]["acc_node0"])
    assert "acc %" in result.stdout and "ensemble" in result.stdout


def test_a_killed_run_resumes_from_the_last_finished_epoch(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "dcl_search",
        "train",
        "dml:2",
        "--dataset",
        "digits",
        "--epochs",
        "12",
        "--out",
        "run",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = tmp_path / "run/metrics.csv"
    deadline = time.time() + 180
    while time.time() < deadline and (not metrics.exists() or len(pd.read_csv(metrics)) < 3):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(pd.read_csv(metrics))
    assert 3 <= finished < 12, "the run must be killed mid-way for this test to mean anything"
    assert not (tmp_path / "run/summary.json").exists()

    result = _train("dml:2", "--dataset", "digits", "--epochs", "12", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = [line for line in result.stderr.splitlines() if line.startswith("resuming")]
    # the checkpoint is written before metrics.csv, so it is at least as far along
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= finished
    epochs = pd.read_csv(metrics)["epoch"].tolist()
    assert epochs == list(range(1, 13))
    assert json.loads((tmp_path / "run/summary.json").read_text())["epochs"] == 12

    # the same command once more trains nothing and says so, then shows the results
    again = _train("dml:2", "--dataset", "digits", "--epochs", "12", "--out", "run", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "run has finished all 12 epochs already" in again.stderr
    assert "resuming" not in again.stderr and "epoch/s" not in again.stderr
    assert pd.read_csv(metrics)["epoch"].tolist() == list(range(1, 13))
    assert "ensemble" in again.stdout


def test_a_changed_setting_is_not_resumed_into_the_same_folder(tmp_path: Path) -> None:
    assert (
        _train("independent:tiny_cnn", "--epochs", "1", "--out", "run", cwd=tmp_path).returncode
        == 0
    )
    result = _train(
        "independent:tiny_cnn", "--epochs", "1", "--seed", "5", "--out", "run", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "belongs to another run (these settings differ: seed)" in result.stderr


def _train_demo_variant(
    tmp_path: Path, recipe: str, *args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """``train`` with ``recipe`` (YAML text, demo.yaml changed) into run/: the command's
    result and its summary.json."""
    (tmp_path / "variant.yaml").write_text(recipe)
    result = _train(*args, "--recipe", "variant.yaml", "--out", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result, json.loads((tmp_path / "run/summary.json").read_text())


DEMO = (REPO / "trainers/demo.yaml").read_text()


@pytest.mark.skipif(_cpp_compiler() is None, reason="inductor needs a C++ compiler")
def test_a_compiled_run_says_so_and_trains(tmp_path: Path) -> None:
    result, summary = _train_demo_variant(
        tmp_path,
        DEMO + "compile: default\n",
        "dml:2:tiny_cnn",
        "--dataset",
        "digits",
        "--epochs",
        "2",
    )
    assert "compile: default: the first epoch also compiles the training step" in result.stderr
    assert summary["epochs"] == 2 and summary["val"]["acc_node0"] > 0.2  # 10 classes: chance 0.1


def test_a_run_says_which_precision_it_trains_in(tmp_path: Path) -> None:
    bf16 = DEMO.replace("precision: fp32", "precision: bf16")
    result, summary = _train_demo_variant(tmp_path, bf16, "independent:mlp", "--epochs", "1")
    assert "1 epoch, seed 0, device cpu in bf16; writing run" in result.stderr
    assert summary["precision"] == "bf16" and summary["recipe"]["precision"] == "bf16"


def test_a_cpu_run_says_the_cuda_only_keys_do_not_apply(tmp_path: Path) -> None:
    graphed = DEMO + "cuda_graph: on\nnode_streams: on\n"
    result, summary = _train_demo_variant(tmp_path, graphed, "independent:mlp", "--epochs", "1")
    assert "cuda_graph: on applies to CUDA devices; on cpu each step runs eagerly" in result.stderr
    assert "node_streams: on applies to CUDA devices; on cpu the nodes run one after another" in (
        result.stderr
    )
    assert summary["graphed_steps"] == 0 and summary["recipe"]["cuda_graph"] == "on"

"""A search across a two-node Ray cluster started on this machine (loopback only)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SPACE = """\
nodes: 2
target_model: mlp
models: [mlp, tiny_cnn]
edge_gates: [through, cutoff, linear, correct]
self_loop_gates: [through, linear]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray(*args: str) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(["ray", *args], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture
def two_node_cluster():
    port = _free_port()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    _ray("start", "--head", f"--port={port}", "--include-dashboard=false", *common)
    try:
        _ray("start", f"--address=127.0.0.1:{port}", *common)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)


def _monitors(address: str, processes: list[tuple[int, int, str]]) -> set[int]:
    """The cluster's autoscaler monitor processes (``ray start --head`` starts one)."""
    port = address.rsplit(":", 1)[1]  # Ray names the GCS by the machine's address, not loopback
    return {
        pid
        for pid, _, command in processes
        if "autoscaler/_private/monitor.py" in command
        and re.search(f"--gcs-address=\\S+:{port} ", command)
    }


def test_trials_run_on_both_nodes_with_shared_storage(
    two_node_cluster: str, tmp_path: Path, running_processes
) -> None:
    monitors = _monitors(two_node_cluster, running_processes())
    assert monitors  # the search ends its own Ray's monitor early, never a joined cluster's
    (tmp_path / "space.yaml").write_text(SPACE)
    shared = tmp_path / "shared"  # one folder both nodes see, as NFS would be on a real cluster
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dcl_search",
            "search",
            "--address",
            two_node_cluster,
            "--space",
            "space.yaml",
            "--epochs",
            "4",
            "--samples",
            "4",
            "--concurrency",
            "2",
            "--storage",
            str(shared),
            "--name",
            "run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = set()
    for path in (shared / "run").glob("trial_*/result.json"):
        nodes.add(json.loads(path.read_text().splitlines()[-1])["node_id"])
    assert len(nodes) == 2, "every trial ran on the same node"
    assert (shared / "run/export/leaderboard.csv").exists()
    assert _monitors(two_node_cluster, running_processes()) == monitors

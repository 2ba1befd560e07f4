"""Plugins: a user's own registered model reaches the search's Ray workers.

Each case runs the CLI in a subprocess, so no registration leaks into the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PLUGIN = """\
from dcl_search.models import register_model
from dcl_search.models._tiny import MLP


@register_model("plugin_mlp")
def plugin_mlp(num_classes: int, in_channels: int = 3) -> MLP:
    return MLP(num_classes, in_channels)
"""

SPACE = """\
nodes: 2
target_model: plugin_mlp
models: [plugin_mlp]
edge_gates: [through]
self_loop_gates: [through]
"""


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcl_search", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled", **env},
    )


def test_a_plugin_model_trains_in_the_search_workers(tmp_path: Path) -> None:
    (tmp_path / "my_models.py").write_text(PLUGIN)
    (tmp_path / "space.yaml").write_text(SPACE)
    # a relative file in the variable: Tune runs each trial in its own folder, so it must have
    # been made absolute before the workers look it up
    result = _cli(
        tmp_path, "search", "--space", "space.yaml", "--samples", "1", "--epochs", "1",
        "--storage", "results", "--name", "run", DCL_SEARCH_PLUGINS="my_models.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    settings = json.loads((tmp_path / "results/run/search.json").read_text())
    assert settings["plugins"] == [str(tmp_path.resolve() / "my_models.py")]
    # reading the results, in another process, loads the stored plugin without being told
    result = _cli(tmp_path, "export", "results/run", "--out", "out")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "out/leaderboard.csv")
    assert list(table["status"]) == ["complete"]
    assert list(table["models"]) == ["plugin_mlp,plugin_mlp"]
    # a stored plugin that has gone is one line naming the file and the field
    (tmp_path / "my_models.py").rename(tmp_path / "moved.py")
    result = _cli(tmp_path, "export", "results/run", "--out", "out2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dcl-search: error: results/run/search.json: plugins: "
        f"{tmp_path.resolve() / 'my_models.py'}: no such file (edit the list if it moved)"
    ]
    assert not (tmp_path / "out2").exists()


def test_without_the_plugin_the_model_is_unknown(tmp_path: Path) -> None:
    result = _cli(tmp_path, "show", "dml:2:plugin_mlp")
    assert result.returncode == 2
    assert "unknown model 'plugin_mlp'" in result.stderr
    assert result.stderr.rstrip().endswith("wrn40_4 (or your own, through --plugin)")


def test_an_installed_package_plugs_in_through_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "plugpkg-1.0.dist-info").mkdir(parents=True)
    (site / "plugpkg-1.0.dist-info/METADATA").write_text("Name: plugpkg\nVersion: 1.0\n")
    (site / "plugpkg-1.0.dist-info/entry_points.txt").write_text(
        "[dcl_search.plugins]\nmodels = plugpkg_models\n"
    )
    (site / "plugpkg_models.py").write_text(PLUGIN)
    result = _cli(tmp_path, "show", "dml:2:plugin_mlp", PYTHONPATH=str(site))
    assert result.returncode == 0, result.stderr
    assert "graph dml:plugin_mlp,plugin_mlp (2 nodes" in result.stdout


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("missing.py", "$DCL_SEARCH_PLUGINS: {tmp}/missing.py: no such file"),
        (
            "no_such_module",
            "$DCL_SEARCH_PLUGINS: no module named 'no_such_module' (a module on the Python path, "
            "or a path to a .py file)",
        ),
        ("broken.py", "$DCL_SEARCH_PLUGINS: {tmp}/broken.py: RuntimeError: no GPU driver"),
    ],
)
def test_a_bad_plugin_is_one_line(tmp_path: Path, plugin: str, message: str) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU driver')\n")
    result = _cli(tmp_path, "show", "dml:2", "--plugin", plugin)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dcl-search: error: " + message.format(tmp=tmp_path.resolve())
    ]

"""The README's promises that can be checked without running them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dcl_search.cli import build_parser
from dcl_search.graphs import graph_from_node_link

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_example_graph_is_valid() -> None:
    block = re.search(r"```json\n(.*?)```", README, re.S).group(1)
    graph = graph_from_node_link(json.loads(block), "README.md")
    assert graph.nodes[2]["frozen"] and graph.edges[1, 0]["gate"] == "linear"


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2, "README.md has exactly two set-up commands"
    assert commands[1] in (REPO / ".ci/run").read_text()
    assert commands[0].startswith("pip install -e . && dcl-search ")


def test_every_command_is_documented() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert f"### `dcl-search {name}" in README

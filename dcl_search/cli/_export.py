"""``dcl-search export RUN``: best graphs as JSON + PNG, and the leaderboard CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from dcl_search.cli._common import at_least

HELP = "write the best graphs of a search (JSON + PNG) and its leaderboard CSV"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help=HELP, description=HELP)
    parser.add_argument("run", help="search folder, e.g. results/<name>")
    parser.add_argument("--top", type=at_least(1), default=5, help="number of graphs (default 5)")
    parser.add_argument("--out", default=None, help="output folder (default RUN/export)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dcl_search.search import export_run
    from dcl_search.search._fidelity import RUNGS_FILE, summarize_rungs_file

    leaderboard, graphs = export_run(Path(args.run), args.top, args.out)
    print(f"wrote {leaderboard} and {RUNGS_FILE}")
    for path in graphs:
        print(f"wrote {path} and {path.with_suffix('.png').name}")
    line = summarize_rungs_file(args.run, leaderboard.parent / RUNGS_FILE)
    if line:
        print(line)
    return 0

"""``dcl-search show GRAPH``: print a graph's nodes and gate matrix."""

from __future__ import annotations

import argparse

from dcl_search.graphs import describe_graph, resolve_graph

HELP = "print a graph's nodes and gate matrix"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("show", help=HELP, description=HELP)
    parser.add_argument("graph", help="graph JSON file or preset (independent, kd, dml:3, ...)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(describe_graph(resolve_graph(args.graph)))
    return 0

"""``dcl-search show GRAPH``: print a graph's nodes and gate matrix, optionally draw it."""

from __future__ import annotations

import argparse

HELP = "print a graph's nodes and gate matrix"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("show", help=HELP, description=HELP)
    parser.add_argument("graph", help="graph JSON file or preset (independent, kd, dml:3, ...)")
    parser.add_argument(
        "--png",
        metavar="FILE",
        help="also write a picture of the graph to FILE (parent folders are created)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dcl_search.graphs import describe_graph, draw_graph, resolve_graph

    graph = resolve_graph(args.graph)
    print(describe_graph(graph))
    if args.png:
        print(f"wrote {draw_graph(graph, args.png)}")
    return 0

"""Reading and writing graph JSON files (networkx node-link data with a format/version)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from dcl_search._errors import GraphError
from dcl_search._files import write_text_atomic
from dcl_search.graphs._schema import CUTOFF, FORMAT, VERSION
from dcl_search.graphs._validate import graph_from_node_link


def gate_of(graph: nx.DiGraph, source: int, target: int) -> str:
    """The gate on source → target; a missing edge is cutoff."""
    if graph.has_edge(source, target):
        return graph.edges[source, target]["gate"]
    return CUTOFF


def graph_to_node_link(graph: nx.DiGraph) -> dict[str, Any]:
    """Node-link data that ``networkx.node_link_graph`` and ``load_graph`` both read."""
    nodes = []
    for node in sorted(graph.nodes):
        attrs = graph.nodes[node]
        entry: dict[str, Any] = {
            "id": node,
            "model": attrs.get("model"),
            "frozen": bool(attrs.get("frozen", False)),
        }
        if attrs.get("checkpoint") is not None:
            entry["checkpoint"] = attrs["checkpoint"]
        if attrs.get("options") is not None:
            entry.update(attrs["options"].to_json())
        nodes.append(entry)
    edges = [
        {"source": s, "target": t, "gate": gate}
        for s, t, gate in sorted(graph.edges(data="gate"))
        if gate != CUTOFF
    ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "directed": True,
        "multigraph": False,
        "graph": dict(graph.graph),
        "nodes": nodes,
        "edges": edges,
    }


def read_graph(path: str | Path) -> nx.DiGraph:
    """Loads and validates a graph JSON file; every problem is a GraphError naming the file."""
    path = Path(path)
    if path.is_dir():  # most often a search's folder, whose graphs are exported JSON files
        found = sorted(path.glob("rank1-*.json")) + sorted(path.glob("export/rank1-*.json"))
        hint = f", e.g. {found[0]}" if found else " (dcl-search export writes them from a search)"
        raise GraphError(f"{path}: a folder, not a graph JSON file; give a graph file{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphError(f"{path}: no such graph file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GraphError(f"{path}: cannot read the graph file ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GraphError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None
    return graph_from_node_link(data, str(path))


def write_graph(graph: nx.DiGraph, path: str | Path) -> Path:
    """Writes ``graph`` as JSON atomically (a crash never leaves half a file)."""
    text = json.dumps(graph_to_node_link(graph), indent=2) + "\n"
    return write_text_atomic(path, text)

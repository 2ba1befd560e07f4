"""Turns node-link JSON into a validated knowledge-transfer graph, refusing bad input.

Every message names the source (usually the file), the node or edge, the bad value and what
is allowed, because the CLI prints it as the whole story.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from dcl_search._errors import GraphError
from dcl_search.collab._options import node_options
from dcl_search.gates import GATES
from dcl_search.graphs._schema import CUTOFF, EDGE_KEYS, FORMAT, NODE_KEYS, TOP_KEYS, VERSION
from dcl_search.models import MODELS

_TYPES = {"int": int, "str": str, "bool": bool, "list or mapping": (list, dict)}


def _fail(source: str, message: str) -> GraphError:
    return GraphError(f"{source}: {message}")


def _check_fields(entry: Any, allowed: dict[str, str], what: str, source: str) -> None:
    if not isinstance(entry, dict):
        raise _fail(source, f"{what} must be a JSON object, got {entry!r}")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise _fail(source, f"{what}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
    for key, kind in allowed.items():
        value = entry.get(key)
        # bool is an int in Python; a node id of `true` is a mistake, not node 1.
        wrong_int = kind == "int" and isinstance(value, bool)
        if key in entry and (wrong_int or not isinstance(value, _TYPES[kind])):
            raise _fail(source, f"{what}: field {key!r} must be {kind}, got {value!r}")


def _check_header(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise _fail(source, "a graph file must hold a JSON object (networkx node-link data)")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise _fail(
            source,
            f"unknown top-level field {unknown[0]!r}; allowed: {', '.join(sorted(TOP_KEYS))}",
        )
    if data.get("format") != FORMAT:
        raise _fail(source, f"field 'format' is {data.get('format')!r}, expected {FORMAT!r}")
    if data.get("version") != VERSION:
        raise _fail(
            source,
            f"unsupported version {data.get('version')!r}; this dcl-search reads version {VERSION}",
        )
    if data.get("directed", True) is not True or data.get("multigraph", False) is not False:
        raise _fail(source, "a knowledge-transfer graph is directed and not a multigraph")
    if not isinstance(data.get("graph", {}), dict):
        raise _fail(source, "field 'graph' must be a JSON object")


def _add_nodes(graph: nx.DiGraph, nodes: Any, source: str) -> None:
    if not isinstance(nodes, list) or not nodes:
        raise _fail(source, "field 'nodes' must be a non-empty list (a graph has M >= 1 nodes)")
    for entry in nodes:
        _check_fields(
            entry,
            NODE_KEYS,
            f"node {entry.get('id') if isinstance(entry, dict) else entry!r}",
            source,
        )
        for key in ("id", "model"):
            if key not in entry:
                raise _fail(source, f"node entry {entry!r} lacks the field {key!r}")
        node = entry["id"]
        if node in graph:
            raise _fail(source, f"node {node} is listed twice")
        if entry["model"] not in MODELS:
            raise _fail(
                source,
                f"node {node}: unknown model {entry['model']!r}; {MODELS.known()}",
            )
        attrs = {"model": entry["model"], "frozen": entry.get("frozen", False)}
        if "checkpoint" in entry:
            attrs["checkpoint"] = entry["checkpoint"]
        options = node_options({**entry, **attrs}, f"{source}: node {node}")
        if options.collaborative:
            attrs["options"] = options
        graph.add_node(node, **attrs)
    expected = set(range(len(nodes)))
    if set(graph.nodes) != expected:
        raise _fail(
            source,
            f"node ids must be 0..{len(nodes) - 1} (node 0 is the target), got {sorted(graph.nodes)}",
        )


def _add_edges(graph: nx.DiGraph, edges: Any, source: str) -> None:
    if not isinstance(edges, list):
        raise _fail(source, "field 'edges' must be a list")
    seen: set[tuple[int, int]] = set()
    for entry in edges:
        _check_fields(entry, EDGE_KEYS, f"edge {entry!r}", source)
        if any(key not in entry for key in EDGE_KEYS):
            raise _fail(source, f"edge {entry!r} needs the fields source, target and gate")
        s, t, gate = entry["source"], entry["target"], entry["gate"]
        for end in (s, t):
            if end not in graph:
                raise _fail(
                    source,
                    f"edge {s}->{t}: node {end} does not exist (nodes are 0..{len(graph) - 1})",
                )
        if (s, t) in seen:
            raise _fail(source, f"edge {s}->{t} is listed twice")
        seen.add((s, t))
        if gate not in GATES:
            raise _fail(
                source,
                f"edge {s}->{t}: unknown gate {gate!r}; {GATES.known()}",
            )
        if gate != CUTOFF:
            graph.add_edge(s, t, gate=gate)


def check_learning(graph: nx.DiGraph, source: str) -> None:
    """Frozen ⇔ nothing teaches the node; the target must learn. Raises GraphError."""
    for node, attrs in graph.nodes(data=True):
        teachers = sorted(graph.predecessors(node))
        if attrs["frozen"]:
            if node == 0:
                raise _fail(source, "node 0 is the target and cannot be frozen")
            if teachers:
                gate = graph.edges[teachers[0], node]["gate"]
                raise _fail(
                    source,
                    f"node {node} is frozen but edge {teachers[0]}->{node} has gate {gate!r}; "
                    "a frozen node learns nothing, so all its incoming edges must be cutoff",
                )
        else:
            options = attrs.get("options")
            if options is not None and options.replaces_label_loss and node not in teachers:
                what = "'heads' > 1" if options.heads > 1 else "intra option 'out'"
                raise _fail(
                    source,
                    f"node {node} has {what}, which trains it with a consensus loss in place of "
                    f"its label loss, but its self-loop {node}->{node} is cutoff; give the "
                    "self-loop a gate or drop the option",
                )
            if "checkpoint" in attrs:
                raise _fail(source, f"node {node}: 'checkpoint' is only read for frozen nodes")
            if not teachers:
                raise _fail(
                    source,
                    f"node {node} is not frozen but all its incoming edges (self-loop included) are "
                    'cutoff, so it would learn nothing; mark it "frozen": true or give an edge a gate',
                )


def graph_from_node_link(data: Any, source: str = "<graph>") -> nx.DiGraph:
    """A validated knowledge-transfer graph from parsed node-link JSON.

    Cutoff edges are dropped: in the returned graph an edge exists iff it teaches.
    """
    _check_header(data, source)
    graph = nx.DiGraph(**data.get("graph", {}))
    _add_nodes(graph, data.get("nodes"), source)
    edges = data.get("edges", data.get("links", []))
    _add_edges(graph, edges, source)
    check_learning(graph, source)
    return graph


def validate_graph(graph: nx.DiGraph, source: str = "<graph>") -> nx.DiGraph:
    """Validates an in-memory DiGraph by a round trip through the exchange format."""
    from dcl_search.graphs._io import graph_to_node_link

    return graph_from_node_link(graph_to_node_link(graph), source)

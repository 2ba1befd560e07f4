"""Canonical form and stable hash: never pay twice for graphs that train the same target.

Three equivalences are folded (DESIGN.md, "Known weaknesses"):
1. ``correct`` on a self-loop equals ``through`` (the label is always right);
2. a node with no teaching path to node 0 cannot change node 0, so it is dropped;
3. non-target nodes are interchangeable, so the node order is the one that gives the
   lexicographically smallest encoding (searched only among nodes with equal invariants).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence

import networkx as nx

from dcl_search.graphs._io import gate_of

_SELF_LOOP_ALIASES = {"correct": "through"}


def _node_signature(graph: nx.DiGraph, node: int) -> tuple:
    attrs = graph.nodes[node]
    signature = (
        attrs["model"],
        bool(attrs.get("frozen", False)),
        str(attrs.get("checkpoint") or ""),
    )
    options = attrs.get("options")
    # appended only when present, so plain graphs keep the hashes they always had
    return signature if options is None else (*signature, options.signature())


def _gate(graph: nx.DiGraph, source: int, target: int) -> str:
    gate = gate_of(graph, source, target)
    return _SELF_LOOP_ALIASES.get(gate, gate) if source == target else gate


def _invariant(graph: nx.DiGraph, node: int) -> tuple:
    """A label that does not depend on node numbering; nodes that differ in it never swap."""
    incoming = sorted(
        (_gate(graph, s, node), _node_signature(graph, s))
        for s in graph.predecessors(node)
        if s != node
    )
    outgoing = sorted(
        (_gate(graph, node, t), _node_signature(graph, t))
        for t in graph.successors(node)
        if t != node
    )
    return (
        _node_signature(graph, node),
        _gate(graph, node, node),
        tuple(incoming),
        tuple(outgoing),
    )


def _orders(graph: nx.DiGraph, others: Sequence[int]) -> Iterator[list[int]]:
    """Every order of the non-target nodes that keeps them sorted by invariant."""
    groups: dict[tuple, list[int]] = {}
    for node in sorted(others, key=lambda n: _invariant(graph, n)):
        groups.setdefault(_invariant(graph, node), []).append(node)
    for parts in itertools.product(*(itertools.permutations(g) for g in groups.values())):
        yield [0, *itertools.chain.from_iterable(parts)]


def _encode(graph: nx.DiGraph, order: Sequence[int]) -> tuple:
    signatures = tuple(_node_signature(graph, n) for n in order)
    gates = tuple(tuple(_gate(graph, s, t) for t in order) for s in order)
    return (signatures, gates)


def canonical_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """The representative of ``graph``'s equivalence class, nodes numbered 0..K-1."""
    relevant = nx.ancestors(graph, 0) | {0}
    sub = graph.subgraph(relevant)
    others = sorted(n for n in relevant if n != 0)
    best = min(_orders(sub, others), key=lambda order: _encode(sub, order))
    canonical = nx.DiGraph()
    for new, old in enumerate(best):
        canonical.add_node(new, **dict(sub.nodes[old]))
    for s_new, s_old in enumerate(best):
        for t_new, t_old in enumerate(best):
            if sub.has_edge(s_old, t_old):
                canonical.add_edge(s_new, t_new, gate=_gate(sub, s_old, t_old))
    return canonical


def graph_hash(graph: nx.DiGraph) -> str:
    """A 16-hex-digit hash, equal for graphs that train the target node the same way."""
    canonical = canonical_graph(graph)
    encoding = _encode(canonical, list(range(canonical.number_of_nodes())))
    digest = hashlib.sha256(json.dumps(encoding, separators=(",", ":")).encode()).hexdigest()
    return digest[:16]

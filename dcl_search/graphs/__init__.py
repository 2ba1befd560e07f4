"""Knowledge-transfer graphs: JSON exchange format, validation, canonical hash, presets."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from dcl_search.graphs._canonical import canonical_graph, graph_hash
from dcl_search.graphs._display import describe_graph, gate_matrix, node_table
from dcl_search.graphs._draw import draw_graph, warm_drawing
from dcl_search.graphs._io import gate_of, graph_to_node_link, read_graph, write_graph
from dcl_search.graphs._presets import PRESETS, dml, independent, is_preset, kd, preset_graph
from dcl_search.graphs._schema import CUTOFF, FORMAT, VERSION
from dcl_search.graphs._validate import graph_from_node_link, validate_graph


def resolve_graph(spec: str | Path) -> nx.DiGraph:
    """A graph from a JSON file path or a preset spec (``independent``, ``dml:3``, ...)."""
    text = str(spec)
    if not Path(text).exists() and is_preset(text):
        return preset_graph(text)
    return read_graph(text)


__all__ = [
    "CUTOFF",
    "FORMAT",
    "PRESETS",
    "VERSION",
    "canonical_graph",
    "describe_graph",
    "dml",
    "draw_graph",
    "gate_matrix",
    "gate_of",
    "graph_from_node_link",
    "graph_hash",
    "graph_to_node_link",
    "independent",
    "is_preset",
    "kd",
    "node_table",
    "preset_graph",
    "read_graph",
    "resolve_graph",
    "validate_graph",
    "warm_drawing",
    "write_graph",
]

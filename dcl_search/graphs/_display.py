"""Text views of a graph: the node table and the M × M gate matrix."""

from __future__ import annotations

import networkx as nx
import pandas as pd

from dcl_search.graphs._io import gate_of


def gate_matrix(graph: nx.DiGraph) -> pd.DataFrame:
    """Rows are sources, columns targets; the diagonal is the label loss."""
    nodes = sorted(graph.nodes)
    cells = [[gate_of(graph, s, t) for t in nodes] for s in nodes]
    labels = [f"{n}" for n in nodes]
    return pd.DataFrame(
        cells, index=pd.Index(labels, name="source"), columns=pd.Index(labels, name="target")
    )


def node_table(graph: nx.DiGraph) -> pd.DataFrame:
    rows = []
    for node in sorted(graph.nodes):
        attrs = graph.nodes[node]
        role = "target" if node == 0 else ("frozen" if attrs.get("frozen") else "trained")
        rows.append(
            {
                "node": node,
                "model": attrs["model"],
                "role": role,
                "checkpoint": attrs.get("checkpoint", ""),
            }
        )
    return pd.DataFrame(rows).set_index("node")


def describe_graph(graph: nx.DiGraph) -> str:
    """The text ``dcl-search show`` prints."""
    from dcl_search.graphs._canonical import graph_hash

    name = graph.graph.get("name")
    header = " ".join(
        filter(
            None, ["graph", name, f"({graph.number_of_nodes()} nodes, hash {graph_hash(graph)})"]
        )
    )
    return "\n".join(
        [
            header,
            node_table(graph).to_string(),
            "",
            "gates (row = source, column = target; diagonal = label loss):",
            gate_matrix(graph).to_string(),
        ]
    )

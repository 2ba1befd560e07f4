"""Text views of a graph: the node table and the M × M gate matrix."""

from __future__ import annotations

import networkx as nx
import pandas as pd

from dcl_search._words import counted
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
        options = attrs.get("options")
        rows.append(
            {
                "node": node,
                "model": attrs["model"],
                "role": role,
                "heads": f"{options.heads} (split {options.split})"
                if options is not None and options.heads > 1
                else "1",
                "intra": ",".join(name for name, _ in options.intra) if options else "",
                "checkpoint": attrs.get("checkpoint", ""),
            }
        )
    table = pd.DataFrame(rows).set_index("node")
    if not any(graph.nodes[n].get("options") for n in graph.nodes):
        table = table.drop(columns=["heads", "intra"])  # plain graphs: the familiar table
    return table


def describe_graph(graph: nx.DiGraph) -> str:
    """The text ``dcl-search show`` prints."""
    from dcl_search.graphs._canonical import graph_hash

    name = graph.graph.get("name")
    header = " ".join(
        filter(
            None,
            [
                "graph",
                name,
                f"({counted(graph.number_of_nodes(), 'node')}, hash {graph_hash(graph)})",
            ],
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

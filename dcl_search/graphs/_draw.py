"""A PNG picture of a graph: nodes on a circle, gated edges as labelled arrows."""

from __future__ import annotations

import io
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from dcl_search.graphs._canonical import graph_hash
from dcl_search.graphs._io import gate_of
from dcl_search.graphs._presets import independent
from dcl_search.graphs._schema import CUTOFF

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TARGET_COLOR = "#f4a300"
TRAINED_COLOR = "#9ecae1"
FROZEN_COLOR = "#bdbdbd"
ROLE_COLORS = {"target": TARGET_COLOR, "trained": TRAINED_COLOR, "frozen": FROZEN_COLOR}
# One colour per built-in gate so the eye finds e.g. every `linear` edge at once;
# gates registered later fall back to the `through` colour.
GATE_COLORS = {
    "through": "#333333",
    "linear": "#2171b5",
    "negative_linear": "#cb181d",
    "correct": "#238b45",
}
NODE_SIZE = 5200  # points², large enough to hold "i: resnet110*" and the self-loop line
CURVE = "arc3,rad=0.15"  # s→t and t→s bend apart instead of overlapping
DPI = 120
PAD = 0.45  # data units beyond the node centres (the circle has radius 1)
MIN_HEIGHT = 1.8
# One picture at a time per process: a search's warm-up thread (warm_drawing) may still import
# matplotlib when its export starts drawing, and two threads importing the same modules can
# see each other's half-initialised ones.
_DRAWING = threading.Lock()


def _role(graph: nx.DiGraph, node: int) -> str:
    if node == 0:
        return "target"
    return "frozen" if graph.nodes[node].get("frozen") else "trained"


def _node_label(graph: nx.DiGraph, node: int) -> str:
    """``i: model`` (``*`` after a frozen model, as the paper's ResNet110*) and the label loss.

    The self-loop's gate is a text line because networkx places self-loop labels poorly.
    """
    attrs = graph.nodes[node]
    star = "*" if attrs.get("frozen") else ""
    label = f"{node}: {attrs['model']}{star}\nself: {gate_of(graph, node, node)}"
    options = attrs.get("options")
    if options is not None:  # e.g. "heads 4 @ stage2" / "intra: mid, out"
        if options.heads > 1:
            label += f"\nheads {options.heads} @ {options.split}"
        if options.intra:
            label += "\nintra: " + ", ".join(name for name, _ in options.intra)
    return label


def _teaching_edges(graph: nx.DiGraph) -> list[tuple[int, int]]:
    """Edges between two nodes whose gate is not cutoff (an explicit cutoff edge is no edge)."""
    return sorted((s, t) for s, t in graph.edges if s != t and gate_of(graph, s, t) != CUTOFF)


def _edge_labels(graph: nx.DiGraph) -> dict[tuple[int, int], str]:
    """The gate name of every teaching edge; self-loops are in the node labels instead."""
    return {(s, t): gate_of(graph, s, t) for s, t in _teaching_edges(graph)}


def _caption(graph: nx.DiGraph, title: str | None) -> str:
    name = graph.graph.get("name")
    line = f"graph {name} (hash {graph_hash(graph)})" if name else f"hash {graph_hash(graph)}"
    return f"{title}\n{line}" if title else line


def _layout(graph: nx.DiGraph) -> dict[int, tuple[float, float]]:
    """Nodes in order on a circle, rotated so the target sits at the top."""
    pos = nx.circular_layout(sorted(graph.nodes))
    turn = math.pi / 2  # circular_layout puts node 0 at angle 0 (the right)
    cos, sin = math.cos(turn), math.sin(turn)
    return {n: (cos * x - sin * y, sin * x + cos * y) for n, (x, y) in pos.items()}


def _draw_nodes(graph: nx.DiGraph, pos: dict, ax) -> None:
    for role, color in ROLE_COLORS.items():
        nodes = [n for n in sorted(graph.nodes) if _role(graph, n) == role]
        if not nodes:
            continue
        collection = nx.draw_networkx_nodes(
            graph,
            pos,
            nodelist=nodes,
            node_size=NODE_SIZE,
            node_color=color,
            edgecolors="black",
            linewidths=3.0 if role == "target" else 1.2,
            ax=ax,
        )
        if role == "frozen":
            collection.set_linestyle("--")  # a frozen teacher learns nothing


def _draw_edges(graph: nx.DiGraph, pos: dict, ax) -> None:
    labels = _edge_labels(graph)
    if not labels:
        return
    edges = list(labels)
    nx.draw_networkx_edges(
        graph,
        pos,
        edgelist=edges,
        edge_color=[GATE_COLORS.get(labels[e], GATE_COLORS["through"]) for e in edges],
        width=1.6,
        arrows=True,
        arrowstyle="-|>",
        arrowsize=18,
        node_size=NODE_SIZE,
        connectionstyle=CURVE,
        ax=ax,
    )
    nx.draw_networkx_edge_labels(
        graph,
        pos,
        edge_labels=labels,
        font_size=8,
        node_size=NODE_SIZE,
        connectionstyle=CURVE,
        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
        ax=ax,
    )


def _legend(graph: nx.DiGraph, ax) -> None:
    """Only the roles the graph has, so the picture holds no colour that means nothing."""
    from matplotlib.patches import Patch

    roles = {_role(graph, n) for n in graph.nodes}
    handles = [
        Patch(facecolor=color, edgecolor="black", label=role)
        for role, color in ROLE_COLORS.items()
        if role in roles
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)


def _frame(pos: dict, ax) -> None:
    """Room around the circle for the big nodes, without the empty band below an odd polygon."""
    ys = [y for _, y in pos.values()]
    low, high = min(ys) - PAD, max(ys) + PAD
    grow = max(0.0, MIN_HEIGHT - (high - low)) / 2  # a lone node still gets a readable picture
    ax.set_xlim(-1 - PAD, 1 + PAD)
    ax.set_ylim(low - grow, high + grow)
    ax.set_aspect("equal")


def draw_graph(graph: nx.DiGraph, path: str | Path, *, title: str | None = None) -> Path:
    """Writes a PNG picture of ``graph`` to ``path`` (parent folders created); returns the path.

    The target (node 0) is gold with a thick border, trained nodes light blue, frozen nodes
    grey and dashed; every edge that is not cutoff is an arrow labelled with its gate.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(graph, path, title)
    return path


def warm_drawing() -> None:
    """Imports matplotlib and loads its font by drawing a one-node graph in memory: 0.4-0.5 s
    that the first picture would otherwise pay. A search calls it while a core idles in its
    tail, so that its export, which ends the command, draws at once."""
    _save_png(independent(), io.BytesIO(), None)


def _save_png(graph: nx.DiGraph, out: Path | io.BytesIO, title: str | None) -> None:
    with _DRAWING:
        fig = _render(graph, title)
        fig.savefig(out, dpi=DPI, bbox_inches="tight", format="png")
        fig.clear()  # drops the artists now; the Figure has no pyplot manager to close


def _render(graph: nx.DiGraph, title: str | None) -> Figure:
    # Imported here: matplotlib takes 0.3 s to import, and every search worker imports this
    # package but never draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure on the Agg canvas: no pyplot figure manager, no GUI backend, nothing global.
    fig = Figure(figsize=(6.4, 6.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pos = _layout(graph)
    _draw_edges(graph, pos, ax)
    _draw_nodes(graph, pos, ax)
    nx.draw_networkx_labels(
        graph, pos, labels={n: _node_label(graph, n) for n in graph.nodes}, font_size=8, ax=ax
    )
    _legend(graph, ax)
    ax.set_title(_caption(graph, title), fontsize=10)
    _frame(pos, ax)
    ax.set_axis_off()
    return fig

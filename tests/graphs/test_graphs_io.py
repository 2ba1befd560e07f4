from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from dcl_search._errors import GraphError
from dcl_search.graphs import (
    FORMAT,
    VERSION,
    graph_from_node_link,
    preset_graph,
    read_graph,
    resolve_graph,
    write_graph,
)


def _data(nodes=None, edges=None, **top) -> dict:
    data = {
        "format": FORMAT,
        "version": VERSION,
        "directed": True,
        "multigraph": False,
        "graph": {},
        "nodes": nodes
        if nodes is not None
        else [{"id": 0, "model": "resnet32"}, {"id": 1, "model": "resnet110"}],
        "edges": edges
        if edges is not None
        else [
            {"source": 0, "target": 0, "gate": "through"},
            {"source": 1, "target": 0, "gate": "linear"},
            {"source": 1, "target": 1, "gate": "through"},
            {"source": 0, "target": 1, "gate": "cutoff"},
        ],
    }
    data.update(top)
    return data


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    graph = graph_from_node_link(_data())
    path = write_graph(graph, tmp_path / "g.json")
    again = read_graph(path)
    assert sorted(again.edges(data="gate")) == [
        (0, 0, "through"),
        (1, 0, "linear"),
        (1, 1, "through"),
    ]
    assert again.nodes[1] == {"model": "resnet110", "frozen": False}


def test_exported_graph_loads_with_plain_networkx(tmp_path: Path) -> None:
    path = write_graph(preset_graph("kd:resnet20,resnet56"), tmp_path / "kd.json")
    graph = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    assert graph.is_directed()
    assert graph.nodes[1]["frozen"] is True and graph.nodes[1]["model"] == "resnet56"
    assert graph.edges[1, 0]["gate"] == "through"


def test_old_links_key_is_read() -> None:
    data = _data()
    data["links"] = data.pop("edges")
    assert graph_from_node_link(data).has_edge(1, 0)


def test_cutoff_edges_are_dropped_on_load() -> None:
    assert not graph_from_node_link(_data()).has_edge(0, 1)


BAD = [
    (dict(format="other"), "field 'format' is 'other'"),
    (dict(version=2), "unsupported version 2; this dcl-search reads version 1"),
    (dict(nodes=[]), "M >= 1"),
    (
        dict(nodes=[{"id": 0, "model": "resnet33"}], edges=[]),
        "node 0: unknown model 'resnet33'; known models: .*resnet32",
    ),
    (
        dict(nodes=[{"id": 0, "model": "resnet32"}, {"id": 2, "model": "resnet32"}]),
        r"node ids must be 0\.\.1",
    ),
    (
        dict(nodes=[{"id": 0, "model": "resnet32"}, {"id": 0, "model": "resnet32"}]),
        "node 0 is listed twice",
    ),
    (
        dict(nodes=[{"id": 0, "model": "resnet32", "size": 3}]),
        "unknown field 'size'; allowed: id, model, frozen, checkpoint",
    ),
    (dict(nodes=[{"id": True, "model": "resnet32"}]), "field 'id' must be int"),
    (dict(nodes=[{"model": "resnet32"}]), "lacks the field 'id'"),
    (
        dict(edges=[{"source": 0, "target": 0, "gate": "sometimes"}]),
        "edge 0->0: unknown gate 'sometimes'; known gates: correct, cutoff",
    ),
    (
        dict(edges=[{"source": 0, "target": 5, "gate": "through"}]),
        "edge 0->5: node 5 does not exist",
    ),
    (dict(edges=[{"source": 0, "target": 0, "gate": "through"}] * 2), "edge 0->0 is listed twice"),
    (dict(edges=[{"source": 0, "target": 0}]), "needs the fields source, target and gate"),
    (
        dict(nodes=[{"id": 0, "model": "resnet32", "frozen": True}], edges=[]),
        "node 0 is the target and cannot be frozen",
    ),
    (
        dict(edges=[{"source": 0, "target": 0, "gate": "through"}]),
        "node 1 is not frozen but all its incoming edges",
    ),
    (
        dict(
            nodes=[{"id": 0, "model": "resnet32"}, {"id": 1, "model": "resnet32", "frozen": True}]
        ),
        "node 1 is frozen but edge 1->1 has gate 'through'",
    ),
    (dict(directed=False), "directed"),
    (dict(extra=1), "unknown top-level field 'extra'"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_graphs_are_refused_naming_the_problem(change: dict, message: str) -> None:
    with pytest.raises(GraphError, match=f"^g.json: .*{message}"):
        graph_from_node_link(_data(**change), "g.json")


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "dcl-search-graph",\n "nodes": [}')
    with pytest.raises(GraphError, match=r"broken.json: not valid JSON \(.* at line 2, column"):
        read_graph(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="nothere.json: no such graph file"):
        read_graph(tmp_path / "nothere.json")


def test_resolve_prefers_an_existing_file_over_a_preset(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_graph(preset_graph("dml:3:resnet20"), tmp_path / "independent")
    assert resolve_graph("independent").number_of_nodes() == 3
    assert resolve_graph("dml:2").number_of_nodes() == 2

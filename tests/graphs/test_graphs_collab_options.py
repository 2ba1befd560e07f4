"""Graph files with multi-head and intra-model node options: parsing, refusal, round trip, hash."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from dcl_search._errors import GraphError
from dcl_search.collab import MidOptions, OutOptions
from dcl_search.graphs import (
    FORMAT,
    VERSION,
    describe_graph,
    graph_from_node_link,
    graph_hash,
    read_graph,
    write_graph,
)


def _data(node0: dict, node1: dict | None = None, self_loop: str = "through") -> dict:
    nodes = [{"id": 0, **node0}]
    edges = [{"source": 0, "target": 0, "gate": self_loop}]
    if node1 is not None:
        nodes.append({"id": 1, **node1})
        edges += [
            {"source": 1, "target": 0, "gate": "through"},
            {"source": 0, "target": 1, "gate": "through"},
            {"source": 1, "target": 1, "gate": "through"},
        ]
    if self_loop == "cutoff":
        edges = [e for e in edges if (e["source"], e["target"]) != (0, 0)]
    return {"format": FORMAT, "version": VERSION, "nodes": nodes, "edges": edges}


def test_heads_default_split_is_the_second_to_last_stage() -> None:
    graph = graph_from_node_link(_data({"model": "resnet32", "heads": 4}))
    options = graph.nodes[0]["options"]
    assert (options.heads, options.split, options.intra) == (4, "stage2", ())


def test_intra_list_takes_paper_defaults_and_mapping_overrides() -> None:
    graph = graph_from_node_link(
        _data({"model": "vgg16", "intra": {"out": {"branches": 3}, "mid": {}}})
    )
    options = graph.nodes[0]["options"]
    assert options.option("out") == OutOptions(branches=3, alpha=0.5, temperature=2.0)
    assert options.option("mid") == MidOptions(alpha=0.05, beta=0.05, temperature=2.0)
    assert options.option("kernel") is None


def test_plain_nodes_carry_no_options_and_keep_their_hash() -> None:
    graph = graph_from_node_link(_data({"model": "resnet32"}, {"model": "resnet32"}))
    assert "options" not in graph.nodes[0]
    # the hash of dml:2 from before node options existed
    assert graph_hash(graph) == "ff3a1d51436aaf13"


def test_options_change_the_hash_and_defaults_hash_like_explicit_values() -> None:
    plain = graph_from_node_link(_data({"model": "tiny_cnn"}))
    mid = graph_from_node_link(_data({"model": "tiny_cnn", "intra": ["mid"]}))
    explicit = graph_from_node_link(
        _data({"model": "tiny_cnn", "intra": {"mid": {"alpha": 0.05, "temperature": 2}}})
    )
    other = graph_from_node_link(_data({"model": "tiny_cnn", "intra": {"mid": {"alpha": 0.1}}}))
    assert graph_hash(mid) == graph_hash(explicit)
    assert len({graph_hash(plain), graph_hash(mid), graph_hash(other)}) == 3


def test_swapped_non_target_nodes_with_options_hash_equal() -> None:
    a = {"model": "tiny_cnn", "heads": 2}
    b = {"model": "tiny_cnn", "intra": ["kernel"]}
    data = _data({"model": "tiny_cnn"}, a)
    data["nodes"].append({"id": 2, **b})
    data["edges"] += [
        {"source": 2, "target": 0, "gate": "linear"},
        {"source": 2, "target": 2, "gate": "through"},
    ]
    swapped = json.loads(json.dumps(data))
    swapped["nodes"][1], swapped["nodes"][2] = {"id": 1, **b}, {"id": 2, **a}
    for edge in swapped["edges"]:
        for end in ("source", "target"):
            edge[end] = {1: 2, 2: 1}.get(edge[end], edge[end])
    assert graph_hash(graph_from_node_link(data)) == graph_hash(graph_from_node_link(swapped))


def test_round_trip_writes_compact_options_and_plain_networkx_reads_them(tmp_path: Path) -> None:
    node = {
        "model": "resnet18",
        "heads": 2,
        "split": "multi-instance",
        "intra": {"out": {"alpha": 0.3}, "kernel": {}},
    }
    graph = graph_from_node_link(_data(node))
    path = write_graph(graph, tmp_path / "g.json")
    written = json.loads(path.read_text())["nodes"][0]
    assert written["heads"] == 2 and written["split"] == "multi-instance"
    assert written["intra"] == {"kernel": {}, "out": {"alpha": 0.3}}
    again = read_graph(path)
    assert again.nodes[0]["options"] == graph.nodes[0]["options"]
    assert graph_hash(again) == graph_hash(graph)
    assert nx.node_link_graph(json.loads(path.read_text()), edges="edges").nodes[0]["heads"] == 2
    assert "heads" in describe_graph(again) and "kernel,out" in describe_graph(again)


@pytest.mark.parametrize(
    ("node0", "self_loop", "message"),
    [
        ({"model": "tiny_cnn", "heads": 0}, "through", "'heads' must be an integer >= 1, got 0"),
        ({"model": "tiny_cnn", "heads": True}, "through", "field 'heads' must be int"),
        (
            {"model": "tiny_cnn", "split": "layer1"},
            "through",
            "'split' is only read when 'heads' > 1",
        ),
        (
            {"model": "resnet32", "heads": 2, "split": "stage3"},
            "through",
            "'split' is 'stage3'; allowed for resnet32: multi-instance, stem, stage1, stage2",
        ),
        (
            {"model": "tiny_cnn", "intra": ["dropout"]},
            "through",
            "unknown intra option 'dropout'; known options: kernel, mid, out, pull_push",
        ),
        ({"model": "tiny_cnn", "intra": "mid"}, "through", "field 'intra' must be list or mapping"),
        ({"model": "tiny_cnn", "intra": ["mid", "mid"]}, "through", "lists an option twice"),
        (
            {"model": "tiny_cnn", "intra": {"mid": {"alpha": -1}}},
            "through",
            "intra.mid: alpha and beta must be >= 0",
        ),
        (
            {"model": "tiny_cnn", "intra": {"out": {"K": 2}}},
            "through",
            "unknown key 'K'; allowed keys: branches, alpha, temperature",
        ),
        (
            {"model": "tiny_cnn", "intra": ["out"]},
            "through",
            "intra option 'out' does not apply to tiny_cnn: it needs a classifier with dropout layers",
        ),
        (
            {"model": "mlp", "intra": ["mid"]},
            "through",
            "intra option 'mid' does not apply to mlp: it needs a convolutional model",
        ),
        (
            {"model": "tiny_cnn", "heads": 2},
            "cutoff",
            "node 0 has 'heads' > 1, which trains it with a consensus loss in place of its label "
            "loss, but its self-loop 0->0 is cutoff",
        ),
    ],
)
def test_bad_options_are_refused_naming_node_field_and_allowed_values(
    node0: dict, self_loop: str, message: str
) -> None:
    data = _data(node0, {"model": "tiny_cnn"}, self_loop=self_loop)
    with pytest.raises(GraphError, match="^g.json: ") as caught:
        graph_from_node_link(data, "g.json")
    assert message in str(caught.value)
    assert "node 0" in str(caught.value)


def test_a_frozen_node_takes_no_options() -> None:
    data = _data({"model": "tiny_cnn"}, {"model": "tiny_cnn", "frozen": True, "heads": 2})
    data["edges"] = [e for e in data["edges"] if e["target"] != 1]
    with pytest.raises(
        GraphError, match="node 1: a frozen node learns nothing, so 'heads' and 'intra'"
    ):
        graph_from_node_link(data, "g.json")

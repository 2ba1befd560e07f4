from __future__ import annotations

import networkx as nx
import pytest

from dcl_search._errors import GraphError
from dcl_search.graphs import (
    canonical_graph,
    describe_graph,
    gate_matrix,
    graph_hash,
    preset_graph,
    validate_graph,
)


def _graph(
    models: list[str], gates: dict[tuple[int, int], str], frozen: set[int] = frozenset()
) -> nx.DiGraph:
    graph = nx.DiGraph()
    for node, model in enumerate(models):
        graph.add_node(node, model=model, frozen=node in frozen)
    for (s, t), gate in gates.items():
        if gate != "cutoff":
            graph.add_edge(s, t, gate=gate)
    return validate_graph(graph)


THREE = {
    (0, 0): "through",
    (1, 0): "linear",
    (2, 0): "correct",
    (1, 1): "through",
    (2, 2): "through",
    (0, 1): "through",
}


def test_permuting_non_target_nodes_keeps_the_hash() -> None:
    a = _graph(["resnet32", "resnet110", "wrn28_2"], THREE)
    swap = {0: 0, 1: 2, 2: 1}
    b = _graph(
        ["resnet32", "wrn28_2", "resnet110"], {(swap[s], swap[t]): g for (s, t), g in THREE.items()}
    )
    assert graph_hash(a) == graph_hash(b)


def test_correct_on_a_self_loop_hashes_as_through() -> None:
    a = _graph(["resnet32", "resnet20"], {(0, 0): "through", (1, 0): "through", (1, 1): "through"})
    b = _graph(["resnet32", "resnet20"], {(0, 0): "correct", (1, 0): "through", (1, 1): "correct"})
    assert graph_hash(a) == graph_hash(b)


def test_correct_on_a_teaching_edge_is_not_through() -> None:
    a = _graph(["resnet32", "resnet20"], {(0, 0): "through", (1, 0): "through", (1, 1): "through"})
    b = _graph(["resnet32", "resnet20"], {(0, 0): "through", (1, 0): "correct", (1, 1): "through"})
    assert graph_hash(a) != graph_hash(b)


def test_nodes_without_a_path_to_the_target_are_dropped() -> None:
    pupil = _graph(
        ["resnet32", "resnet110"], {(0, 0): "through", (0, 1): "through", (1, 1): "through"}
    )
    assert canonical_graph(pupil).number_of_nodes() == 1
    assert graph_hash(pupil) == graph_hash(preset_graph("independent:resnet32"))


def test_indirect_teachers_are_kept() -> None:
    chain = _graph(
        ["resnet32", "resnet20", "resnet56"],
        {
            (0, 0): "through",
            (1, 0): "through",
            (1, 1): "through",
            (2, 1): "through",
            (2, 2): "through",
        },
    )
    assert canonical_graph(chain).number_of_nodes() == 3


@pytest.mark.parametrize("other", ["resnet56", "frozen"])
def test_different_graphs_hash_differently(other: str) -> None:
    base = _graph(
        ["resnet32", "resnet110"], {(0, 0): "through", (1, 0): "through", (1, 1): "through"}
    )
    if other == "frozen":
        changed = _graph(
            ["resnet32", "resnet110"], {(0, 0): "through", (1, 0): "through"}, frozen={1}
        )
    else:
        changed = _graph(
            ["resnet32", other], {(0, 0): "through", (1, 0): "through", (1, 1): "through"}
        )
    assert graph_hash(base) != graph_hash(changed)


def test_hash_is_stable_across_runs() -> None:
    # A literal: changing the encoding silently would orphan every stored search result.
    assert graph_hash(preset_graph("dml:2")) == "ff3a1d51436aaf13"


def test_presets() -> None:
    kd = preset_graph("kd")
    assert [kd.nodes[n]["model"] for n in kd] == ["resnet32", "resnet110"]
    assert kd.nodes[1]["frozen"] and sorted(kd.edges) == [(0, 0), (1, 0)]
    dml = preset_graph("dml:3:resnet20")
    assert dml.number_of_edges() == 9 and {d["model"] for _, d in dml.nodes(data=True)} == {
        "resnet20"
    }
    assert [d["model"] for _, d in preset_graph("dml:resnet20,wrn16_2").nodes(data=True)] == [
        "resnet20",
        "wrn16_2",
    ]
    assert preset_graph("independent:tiny_cnn").nodes[0]["model"] == "tiny_cnn"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ensemble", "unknown preset 'ensemble'; presets: independent, kd, dml"),
        ("kd:resnet20", "kd takes STUDENT,TEACHER"),
        ("dml:0", "at least 1 node"),
        ("dml:resnet20,nope", "unknown model 'nope'"),
    ],
)
def test_bad_presets(spec: str, message: str) -> None:
    with pytest.raises(GraphError, match=message):
        preset_graph(spec)


def test_gate_matrix_and_description() -> None:
    graph = preset_graph("kd:resnet20,resnet56")
    matrix = gate_matrix(graph)
    assert matrix.loc["1", "0"] == "through" and matrix.loc["0", "1"] == "cutoff"
    text = describe_graph(graph)
    assert "resnet56" in text and "frozen" in text and graph_hash(graph) in text

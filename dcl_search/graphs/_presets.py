"""Preset graphs, the baselines every result is compared to.

independent[:MODEL]                 one node trained on the labels alone
kd[:STUDENT,TEACHER]                frozen pretrained teacher → student (Hinton et al. 2015)
dml:M[:MODEL] | dml:MODEL,MODEL,…   M nodes, every edge through (Zhang et al., CVPR 2018)
"""

from __future__ import annotations

import networkx as nx

from dcl_search._errors import GraphError
from dcl_search.graphs._validate import validate_graph

DEFAULT_MODEL = "resnet32"
DEFAULT_TEACHER = "resnet110"
PRESETS = ("independent", "kd", "dml")


def independent(model: str = DEFAULT_MODEL) -> nx.DiGraph:
    graph = nx.DiGraph(name=f"independent:{model}")
    graph.add_node(0, model=model, frozen=False)
    graph.add_edge(0, 0, gate="through")
    return graph


def kd(student: str = DEFAULT_MODEL, teacher: str = DEFAULT_TEACHER) -> nx.DiGraph:
    graph = nx.DiGraph(name=f"kd:{student},{teacher}")
    graph.add_node(0, model=student, frozen=False)
    graph.add_node(1, model=teacher, frozen=True)
    graph.add_edge(0, 0, gate="through")
    graph.add_edge(1, 0, gate="through")
    return graph


def dml(models: list[str]) -> nx.DiGraph:
    graph = nx.DiGraph(name="dml:" + ",".join(models))
    for node, model in enumerate(models):
        graph.add_node(node, model=model, frozen=False)
    for s in graph.nodes:
        for t in graph.nodes:
            graph.add_edge(s, t, gate="through")
    return graph


def _models(argument: str, spec: str) -> list[str]:
    models = [m.strip() for m in argument.split(",")]
    if not all(models):
        raise GraphError(f"preset {spec!r}: empty model name in {argument!r}")
    return models


def _dml_models(argument: str, spec: str) -> list[str]:
    if not argument:
        return [DEFAULT_MODEL, DEFAULT_MODEL]
    count, _, model = argument.partition(":")
    if count.isdigit():
        if int(count) < 1:
            raise GraphError(f"preset {spec!r}: dml needs at least 1 node, got {count}")
        return [model or DEFAULT_MODEL] * int(count)
    return _models(argument, spec)


def preset_graph(spec: str) -> nx.DiGraph:
    """The validated graph a preset spec names, e.g. ``dml:3``, ``kd:resnet20,resnet56``."""
    name, _, argument = spec.partition(":")
    if name == "independent":
        models = _models(argument, spec) if argument else [DEFAULT_MODEL]
        if len(models) != 1:
            raise GraphError(f"preset {spec!r}: independent takes one model, got {len(models)}")
        graph = independent(models[0])
    elif name == "kd":
        models = _models(argument, spec) if argument else [DEFAULT_MODEL, DEFAULT_TEACHER]
        if len(models) != 2:
            raise GraphError(f"preset {spec!r}: kd takes STUDENT,TEACHER, got {len(models)} models")
        graph = kd(*models)
    elif name == "dml":
        graph = dml(_dml_models(argument, spec))
    else:
        raise GraphError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return validate_graph(graph, f"preset {spec!r}")


def is_preset(spec: str) -> bool:
    return spec.partition(":")[0] in PRESETS

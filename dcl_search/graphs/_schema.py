"""The graph exchange format: networkx node-link JSON plus a format/version field.

    {"format": "dcl-search-graph", "version": 1, "directed": true, "multigraph": false,
     "graph": {...free-form metadata...},
     "nodes": [{"id": 0, "model": "resnet32"}, {"id": 1, "model": "resnet110", "frozen": true}],
     "edges": [{"source": 0, "target": 0, "gate": "through"},
               {"source": 1, "target": 0, "gate": "linear"}]}

A node may also carry ``heads``/``split`` (multi-head training) and ``intra`` (intra-model
losses); see :mod:`dcl_search.collab`. Node 0 is the target. A pair (s, t) without an edge is cutoff; (t, t) is the label loss.
"""

from __future__ import annotations

FORMAT = "dcl-search-graph"
VERSION = 1
CUTOFF = "cutoff"

NODE_KEYS = {
    "id": "int",
    "model": "str",
    "frozen": "bool",
    "checkpoint": "str",
    # collaborative-learning options, see dcl_search.collab
    "heads": "int",
    "split": "str",
    "intra": "list or mapping",
}
EDGE_KEYS = {"source": "int", "target": "int", "gate": "str"}
TOP_KEYS = {"format", "version", "directed", "multigraph", "graph", "nodes", "edges", "links"}

"""Multi-head and intra-model collaborative learning as options of a graph node.

- Song & Chai, "Collaborative Learning for Deep Neural Networks" (NeurIPS 2018): ``heads`` and
  ``split`` — several classifier heads on shared lower layers, a consensus loss among them.
- Fang & Lin, "Intra-Model Collaborative Learning of Neural Networks": ``intra`` options
  ``out`` (hierarchical dropout), ``mid`` (local classifiers), ``pull_push`` (similarity of
  representations), ``kernel`` (decorrelated filters).

:mod:`dcl_search.collab._options` parses and validates them, :mod:`._losses` holds the
formulas, and :class:`CollaborativeNode` trains a node with them.
"""

from dcl_search._lazy import lazy_exports
from dcl_search.collab._options import (
    INTRA_OPTIONS,
    MULTI_INSTANCE,
    KernelOptions,
    MidOptions,
    ModelTraits,
    NodeOptions,
    OutOptions,
    PullPushOptions,
    model_traits,
    node_options,
)

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            (
                "LocalClassifier",
                "channel_std",
                "consensus_loss",
                "hierarchical_dropout",
                "kernel_loss",
                "mid_losses",
                "pull_push_loss",
                "pull_push_weights",
                "scale_gradient",
                "similarity_matrix",
            ),
            "._losses",
        ),
        "CollaborativeNode": "._node",
        "NodeOutput": "._node",
    },
)

__all__ = [
    "INTRA_OPTIONS",
    "MULTI_INSTANCE",
    "CollaborativeNode",
    "KernelOptions",
    "LocalClassifier",
    "MidOptions",
    "ModelTraits",
    "NodeOptions",
    "NodeOutput",
    "OutOptions",
    "PullPushOptions",
    "channel_std",
    "consensus_loss",
    "hierarchical_dropout",
    "kernel_loss",
    "mid_losses",
    "model_traits",
    "node_options",
    "pull_push_loss",
    "pull_push_weights",
    "scale_gradient",
    "similarity_matrix",
]

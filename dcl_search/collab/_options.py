"""Per-node collaborative-learning options: multi-head training and the intra-model losses.

A graph node may carry, besides its model:

- ``heads`` (int, default 1) and ``split``: Song & Chai's multi-head collaborative learning.
  The node trains ``heads`` copies of the layers after ``split`` on top of shared lower layers
  (``split`` names the last shared stage of the model, e.g. ``stage2`` of a CIFAR ResNet;
  ``multi-instance`` shares nothing). Default split: the model's second-to-last stage.
- ``intra``: Fang & Lin's intra-model options, a list of names (paper defaults) or a mapping
  name → parameters overriding them. Each option's parameters are a dataclass registered in
  :data:`INTRA_OPTIONS`; its docstring gives the equation and where our values come from.

What a model supports is read from its :meth:`~dcl_search.models.ImageClassifier.layout`,
built once on the ``meta`` device (no memory, no initialisation cost).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import Any

from dcl_search._config import from_mapping
from dcl_search._errors import GraphError
from dcl_search._registry import Registry

MULTI_INSTANCE = "multi-instance"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class OutOptions:
    """Hierarchical dropout (Fang & Lin, Sec. III-A, Eq. 4): every dropout layer of the
    classifier is sampled ``branches`` (K) times, giving K^n predictions that learn from the
    labels and from the consensus of the others. Paper values: K = 2, T = 2, α_out = 0.5."""

    branches: int = 2
    alpha: float = 0.5
    temperature: float = 2.0

    def __post_init__(self) -> None:
        _check(self.branches >= 2, f"branches is {self.branches}, but must be >= 2")
        _check(0 <= self.alpha <= 1, f"alpha is {self.alpha}, but must be in [0, 1]")
        _check(self.temperature > 0, f"temperature is {self.temperature}, but must be > 0")


@dataclass(frozen=True)
class MidOptions:
    """Local classifiers after intermediate layers (Sec. III-B, Eqs. 5–7), each updating only
    its own layer. Paper values: α_mid = β_mid = 0.05, T = 2. ``at``: after every block
    (``blocks``, the paper's "each intermediate layer") or only after every stage (``stages``,
    cheaper for deep networks)."""

    alpha: float = 0.05
    beta: float = 0.05
    temperature: float = 2.0
    at: str = "blocks"

    def __post_init__(self) -> None:
        _check(self.alpha >= 0 and self.beta >= 0, "alpha and beta must be >= 0")
        _check(self.temperature > 0, f"temperature is {self.temperature}, but must be > 0")
        _check(
            self.at in ("blocks", "stages"), f"at is {self.at!r}; allowed values: blocks, stages"
        )


@dataclass(frozen=True)
class PullPushOptions:
    """Similarity of intermediate representations pulled towards the labels' and pushed from
    the inputs' (Sec. III-C, Eqs. 8–9), each layer updating only itself. The paper ramps α_pull
    up and α_push down linearly from input to output but gives no values: ``pull`` and ``push``
    are our [first layer, last layer] weights."""

    pull: tuple[float, ...] = (0.01, 0.1)
    push: tuple[float, ...] = (0.1, 0.01)
    at: str = "blocks"

    def __post_init__(self) -> None:
        for name in ("pull", "push"):
            pair = getattr(self, name)
            _check(
                len(pair) == 2 and min(pair) >= 0,
                f"{name} must be two weights >= 0 [first layer, last layer], got {list(pair)}",
            )
        _check(
            self.at in ("blocks", "stages"), f"at is {self.at!r}; allowed values: blocks, stages"
        )


@dataclass(frozen=True)
class KernelOptions:
    """Decorrelated convolution kernels (Sec. III-D, Eq. 10) in the last ``stages`` (paper: the
    last two groups of convolutions). The paper gives no loss weight; ``weight`` is ours."""

    weight: float = 0.01
    stages: int = 2

    def __post_init__(self) -> None:
        _check(self.weight >= 0, f"weight is {self.weight}, but must be >= 0")
        _check(self.stages >= 1, f"stages is {self.stages}, but must be >= 1")


INTRA_OPTIONS: Registry[type] = Registry("intra-model option")
"""Name → the option's parameter dataclass (defaults are the paper's where it gives them)."""
INTRA_OPTIONS.register("out")(OutOptions)
INTRA_OPTIONS.register("mid")(MidOptions)
INTRA_OPTIONS.register("pull_push")(PullPushOptions)
INTRA_OPTIONS.register("kernel")(KernelOptions)


@dataclass(frozen=True)
class ModelTraits:
    """What a registered model offers to the collaborative options."""

    stages: tuple[str, ...]
    feature_maps: bool
    dropout_classifier: bool

    @property
    def default_split(self) -> str:
        return self.stages[-2] if len(self.stages) >= 2 else MULTI_INSTANCE

    def supports(self, option: str) -> str | None:
        """None if ``option`` applies to this model, else why not."""
        if option == "out" and not self.dropout_classifier:
            return "needs a classifier with dropout layers (e.g. vgg16, resnet18)"
        if option in ("mid", "pull_push", "kernel") and not self.feature_maps:
            return "needs a convolutional model (its blocks output no feature maps)"
        return None


@functools.cache
def model_traits(model: str) -> ModelTraits | None:
    """The traits of a registered model, or None if it does not describe its layout."""
    import torch  # here: parsing and checking options needs no torch (dcl_search._lazy)
    from torch import nn

    from dcl_search.models import build_model

    with torch.device("meta"):
        net = build_model(model, num_classes=10, in_channels=3)
    try:
        layout = net.layout()
    except (NotImplementedError, AttributeError):
        return None
    classifier = layout.head[-1]
    dropout = isinstance(classifier, nn.Sequential) and any(
        isinstance(m, nn.Dropout) for m in classifier
    )
    return ModelTraits(tuple(name for name, _ in layout.stages), layout.feature_maps, dropout)


@dataclass(frozen=True)
class NodeOptions:
    """A node's collaborative options, validated and with every default filled in."""

    heads: int = 1
    split: str | None = None
    intra: tuple[tuple[str, Any], ...] = ()  # (name, options dataclass), sorted by name

    @property
    def collaborative(self) -> bool:
        return self.heads > 1 or bool(self.intra)

    @property
    def replaces_label_loss(self) -> bool:
        """Multi-head and ``out`` turn the node's label loss into a consensus loss."""
        return self.heads > 1 or "out" in dict(self.intra)

    def option(self, name: str) -> Any:
        return dict(self.intra).get(name)

    def to_json(self) -> dict[str, Any]:
        """The node attributes as the graph file writes them (defaults left out)."""
        out: dict[str, Any] = {}
        if self.heads > 1:
            out["heads"], out["split"] = self.heads, self.split
        if self.intra:
            changed = {
                name: {
                    f.name: list(v) if isinstance(v := getattr(opts, f.name), tuple) else v
                    for f in dataclasses.fields(opts)
                    if getattr(opts, f.name) != f.default
                }
                for name, opts in self.intra
            }
            out["intra"] = changed if any(changed.values()) else [name for name, _ in self.intra]
        return out

    def signature(self) -> str:
        """A stable text of every setting, defaults included (for hashing)."""
        full = {
            "heads": self.heads,
            "split": self.split,
            "intra": {name: dataclasses.asdict(opts) for name, opts in self.intra},
        }
        return json.dumps(full, sort_keys=True, separators=(",", ":"))


def _intra_from_json(value: Any, where: str) -> dict[str, Any]:
    known = ", ".join(INTRA_OPTIONS.names())
    if isinstance(value, list):
        if len(set(map(str, value))) != len(value):
            raise ValueError(f"{where}: 'intra' lists an option twice: {value!r}")
        value = {name: {} for name in value}
    if not isinstance(value, dict):
        raise ValueError(
            f"{where}: 'intra' must be a list of option names or a mapping name → parameters, "
            f"got {value!r}; options: {known}"
        )
    parsed = {}
    for name, params in value.items():
        if name not in INTRA_OPTIONS:
            raise ValueError(f"{where}: unknown intra option {name!r}; known options: {known}")
        parsed[name] = from_mapping(
            INTRA_OPTIONS.get(name), params or {}, f"{where}: intra.{name}", GraphError
        )
    return parsed


def node_options(attrs: dict[str, Any], where: str) -> NodeOptions:
    """Validated options from a node's attributes (``heads``, ``split``, ``intra``).

    ``where`` names the file and node for messages. Raises GraphError.
    """
    try:
        return _node_options(attrs, where)
    except ValueError as problem:  # GraphError is a ValueError too
        message = str(problem)
        raise GraphError(message if message.startswith(where) else f"{where}: {message}") from None


def _node_options(attrs: dict[str, Any], where: str) -> NodeOptions:
    heads, split, intra = attrs.get("heads", 1), attrs.get("split"), attrs.get("intra")
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise ValueError(f"'heads' must be an integer >= 1, got {heads!r}")
    if heads == 1 and split is not None:
        raise ValueError("'split' is only read when 'heads' > 1")
    if heads == 1 and not intra:
        return NodeOptions()
    if attrs.get("frozen"):
        raise ValueError("a frozen node learns nothing, so 'heads' and 'intra' do not apply to it")
    model = attrs["model"]
    traits = model_traits(model)
    if traits is None:
        raise ValueError(
            f"model {model!r} does not describe its layout (ImageClassifier.layout()), "
            "so it cannot take 'heads' or 'intra'"
        )
    if heads > 1:
        split = traits.default_split if split is None else split
        allowed = [MULTI_INSTANCE, *traits.stages[:-1]]
        if split not in allowed:
            raise ValueError(
                f"'split' is {split!r}; allowed for {model}: {', '.join(allowed)} "
                "(the last shared stage, or multi-instance to share nothing)"
            )
    options = _intra_from_json(intra, where) if intra else {}
    for name in options:
        why = traits.supports(name)
        if why:
            raise ValueError(f"intra option {name!r} does not apply to {model}: it {why}")
    return NodeOptions(heads, split if heads > 1 else None, tuple(sorted(options.items())))

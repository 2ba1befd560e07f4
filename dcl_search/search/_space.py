"""Search spaces over knowledge-transfer graphs: YAML → :class:`SearchSpace` → Optuna trial → graph.

A search space fixes node 0 (the target) and lets the sampler choose, for a graph of M nodes,
the model of every other node and one gate per cell of the M×M gate matrix, plus optional
numeric recipe fields. :func:`suggest_config` samples it define-by-run with these parameter
names, stable across trials so that Optuna (and Ray's OptunaSearch) can learn from them:

- ``num_nodes``: M, only when the space allows more than one value;
- ``model_{i}`` for 1 <= i < M: one of ``models``;
- ``gate_{s}_{t}`` for every ordered pair, self-loops included: one of ``edge_gates`` (s != t)
  or ``self_loop_gates`` (s == t). The target's self-loop ``gate_0_0`` never offers cutoff, so
  the deployed network always learns from the labels (a target taught only by other nodes is
  not the paper's setting and wastes trials); with ``allow_frozen: false`` no self-loop offers
  cutoff, so no node can end up frozen;
- ``hp_{name}`` for each searched recipe field, e.g. ``hp_optimizer.lr``;
- per learning node i (node 0 included; frozen nodes take no options), when the space offers
  them (see :mod:`dcl_search.collab`): ``heads_{i}``, one of ``heads``, only if the node's
  self-loop teaches (the consensus loss replaces its label loss); ``split_{i}``, one of
  ``split``, if it drew more than one head; ``intra_{i}_{name}`` (false/true) for each option
  of ``intra`` that the node's model supports (``out`` also only if its self-loop teaches).

:func:`config_to_graph` turns such a config (a plain dict, as Ray hands it to the trial) into a
validated graph: a non-target node whose incoming gates are all cutoff is a frozen pretrained
node (the paper's "ResNet110*").
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from dcl_search._config import REPO_ROOT, find_named_yaml, from_mapping, load_yaml
from dcl_search._errors import SearchSpaceError
from dcl_search._registry import Registry
from dcl_search.collab import (
    INTRA_OPTIONS,
    MULTI_INSTANCE,
    NodeOptions,
    model_traits,
    node_options,
)
from dcl_search.gates import GATES
from dcl_search.graphs import CUTOFF, validate_graph
from dcl_search.models import MODELS
from dcl_search.training import Recipe

_FOLDER = "search_spaces"
DEFAULT_SPLIT = "default"  # the model's own default split point (its second-to-last stage)

# The numeric recipe fields a search may vary, with the values Recipe accepts. Checked when the
# space is loaded, so a bad range fails at once instead of in every trial that samples an end.
_HYPERPARAMETERS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "temperature": ("> 0", lambda v: v > 0),
    "optimizer.lr": ("> 0", lambda v: v > 0),
    "optimizer.momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
    "optimizer.weight_decay": (">= 0", lambda v: v >= 0),
}
_HYPERPARAMETER_NAMES = ", ".join(_HYPERPARAMETERS)
_TRIAL = "trial config"


def _is_int(value: Any) -> bool:
    # bool is an int in Python, but `nodes: true` is a mistake, not 1 node.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class NodeRange:
    """The number of nodes M of the sampled graphs, ``min``..``max`` inclusive."""

    min: int
    max: int

    def __post_init__(self) -> None:
        for name in ("min", "max"):
            if not _is_int(getattr(self, name)):
                raise SearchSpaceError(f"{name} must be int, got {getattr(self, name)!r}")
        if self.min < 1:
            raise SearchSpaceError(f"min is {self.min}, but must be >= 1 (node 0 is the target)")
        if self.min > self.max:
            raise SearchSpaceError(f"min is {self.min}, but must be <= max ({self.max})")


@dataclass(frozen=True)
class NumericRange:
    """A float searched in [low, high], uniformly or (``log``) log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise SearchSpaceError(f"{name} must be float, got {value!r}")
            if not math.isfinite(value):
                raise SearchSpaceError(f"{name} is {value}, but must be finite")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.log, bool):
            raise SearchSpaceError(f"log must be true or false, got {self.log!r}")
        if self.low > self.high:
            raise SearchSpaceError(f"low is {self.low}, but must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise SearchSpaceError(f"low is {self.low}, but must be > 0 when log is true")


def _check_names(key: str, names: Any, registry: Registry[Any]) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise SearchSpaceError(f"{key} must be a list of names, got {names!r}")
    known = ", ".join(registry.names())
    if not names:
        raise SearchSpaceError(f"{key} is empty; list at least one of: {known}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or name not in registry:
            raise SearchSpaceError(
                f"{key}[{i}] is {name!r}, not a registered {registry.kind}; {registry.known()}"
            )
        if name in names[:i]:
            raise SearchSpaceError(f"{key} lists {name!r} twice; each choice once")
    return tuple(names)


def _check_hyperparameter_name(name: Any) -> None:
    if name not in _HYPERPARAMETERS:
        raise SearchSpaceError(
            f"hyperparameters.{name} is not a searchable recipe field; allowed: {_HYPERPARAMETER_NAMES}"
        )


@dataclass(frozen=True)
class SearchSpace:
    """What a search may choose: see the module docstring for how it is sampled.

    Validated on construction; ``nodes`` may be given as an int (a fixed M) and
    ``hyperparameters`` as a mapping, both normalised so the space is hashable.
    """

    nodes: NodeRange
    target_model: str
    models: tuple[str, ...]
    edge_gates: tuple[str, ...]
    self_loop_gates: tuple[str, ...]
    allow_frozen: bool = True
    hyperparameters: tuple[tuple[str, NumericRange], ...] = ()
    heads: tuple[int, ...] = (1,)
    split: tuple[str, ...] = (DEFAULT_SPLIT,)
    intra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        nodes = self.nodes
        if _is_int(nodes):
            if nodes < 1:
                raise SearchSpaceError(f"nodes is {nodes}, but must be >= 1 (node 0 is the target)")
            object.__setattr__(self, "nodes", NodeRange(int(nodes), int(nodes)))
        elif not isinstance(nodes, NodeRange):
            raise SearchSpaceError(
                f"nodes must be an int or a mapping {{min: M, max: M}}, got {nodes!r}"
            )
        if not isinstance(self.target_model, str) or self.target_model not in MODELS:
            raise SearchSpaceError(
                f"target_model is {self.target_model!r}, not a registered model; {MODELS.known()}"
            )
        object.__setattr__(self, "models", _check_names("models", self.models, MODELS))
        for key in ("edge_gates", "self_loop_gates"):
            object.__setattr__(self, key, _check_names(key, getattr(self, key), GATES))
        if not isinstance(self.allow_frozen, bool):
            raise SearchSpaceError(f"allow_frozen must be true or false, got {self.allow_frozen!r}")
        if self.self_loop_gates == (CUTOFF,):
            # gate_0_0 never offers cutoff (see the module docstring), so nothing would be left.
            others = (
                "" if self.allow_frozen else " (nor do the other nodes' with allow_frozen: false)"
            )
            raise SearchSpaceError(
                f"self_loop_gates is ['cutoff'] only, but the target's self-loop never samples "
                f"cutoff{others}; add one of: {', '.join(g for g in GATES.names() if g != CUTOFF)}"
            )
        object.__setattr__(self, "hyperparameters", self._checked_hyperparameters())
        self._check_collaborative()

    @property
    def collaborative(self) -> bool:
        """Whether any node may get collaborative options (more heads, intra-model losses)."""
        return max(self.heads) > 1 or bool(self.intra)

    def _check_collaborative(self) -> None:
        heads = tuple(self.heads) if isinstance(self.heads, (list, tuple)) else self.heads
        if (
            not isinstance(heads, tuple)
            or not heads
            or any(not _is_int(h) or h < 1 for h in heads)
            or len(set(heads)) != len(heads)
        ):
            raise SearchSpaceError(
                f"heads must be a list of distinct integers >= 1, got {self.heads!r}"
            )
        object.__setattr__(self, "heads", heads)
        object.__setattr__(
            self, "intra", _check_names("intra", self.intra, INTRA_OPTIONS) if self.intra else ()
        )
        split = tuple(self.split) if isinstance(self.split, (list, tuple)) else self.split
        if not isinstance(split, tuple) or not split or len(set(split)) != len(split):
            raise SearchSpaceError(f"split must be a list of distinct names, got {self.split!r}")
        object.__setattr__(self, "split", split)
        if not self.collaborative:
            return
        for model in dict.fromkeys((self.target_model, *self.models)):
            traits = model_traits(model)
            if traits is None:
                continue  # a model without a layout simply never gets options
            allowed = (DEFAULT_SPLIT, MULTI_INSTANCE, *traits.stages[:-1])
            for name in split:
                if name not in allowed:
                    raise SearchSpaceError(
                        f"split {name!r} is not a split point of {model}; allowed for it: "
                        f"{', '.join(allowed)} (list only names every model of the space has)"
                    )

    def _checked_hyperparameters(self) -> tuple[tuple[str, NumericRange], ...]:
        items = self.hyperparameters
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        seen: set[str] = set()
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise SearchSpaceError(
                    f"hyperparameters must hold (name, NumericRange) pairs, got {pair!r}"
                )
            name, numeric = pair
            _check_hyperparameter_name(name)
            if name in seen:
                raise SearchSpaceError(f"hyperparameters.{name} is given twice")
            seen.add(name)
            if not isinstance(numeric, NumericRange):
                raise SearchSpaceError(
                    f"hyperparameters.{name} must be a NumericRange, got {numeric!r}"
                )
            rule, ok = _HYPERPARAMETERS[name]
            for end in ("low", "high"):
                value = getattr(numeric, end)
                if not ok(value):
                    raise SearchSpaceError(
                        f"hyperparameters.{name}.{end} is {value}, but {name} must be {rule}"
                    )
        return tuple(sorted(pairs, key=lambda pair: pair[0]))

    def with_nodes(self, nodes: int | tuple[int, int]) -> SearchSpace:
        """This space with M replaced: ``4`` (fixed) or ``(2, 7)`` (a range), e.g. from --nodes."""
        if isinstance(nodes, tuple) and len(nodes) == 2:
            low, high = nodes
        elif _is_int(nodes):
            low = high = nodes
        else:
            raise SearchSpaceError(f"nodes override {nodes!r}: give an int M or a pair (min, max)")
        try:
            node_range = NodeRange(low, high)
        except SearchSpaceError as problem:
            raise SearchSpaceError(f"nodes override {nodes!r}: {problem}") from None
        return dataclasses.replace(self, nodes=node_range)


# ---------------------------------------------------------------------------------------------
# Loading


SEARCH_SPACES: Registry[Path] = Registry("search space")
for _name in ("paper", "demo", "collab_demo"):
    SEARCH_SPACES.register(_name)(REPO_ROOT / _FOLDER / f"{_name}.yaml")

_REQUIRED = ("nodes", "target_model", "models", "edge_gates", "self_loop_gates")


def _range(cls: type, data: Any, key: str, source: str, example: str) -> Any:
    """A NodeRange / NumericRange from a YAML mapping, every problem naming ``key``."""
    if not isinstance(data, dict):
        raise SearchSpaceError(f"{source}: {key} must be a mapping {example}, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    # Unknown keys first (from_mapping lists the allowed ones), then missing ones, which
    # from_mapping would only report as a TypeError from __init__.
    if not set(data) - set(names):
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise SearchSpaceError(
                f"{source}: {key} lacks the key {missing[0]!r}; required keys: {', '.join(required)}"
            )
    return from_mapping(cls, data, f"{source}: {key}", SearchSpaceError)


def search_space_from_dict(data: dict[str, Any], source: str = "search space") -> SearchSpace:
    """A validated :class:`SearchSpace` from parsed YAML; problems name ``source`` and the key."""
    if not isinstance(data, dict):
        raise SearchSpaceError(f"{source}: expected a mapping of keys to values, got {data!r}")
    allowed = [f.name for f in dataclasses.fields(SearchSpace)]
    unknown = sorted(set(data) - set(allowed), key=str)
    if unknown:
        raise SearchSpaceError(
            f"{source}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}"
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise SearchSpaceError(
            f"{source}: missing key {missing[0]!r}; required keys: {', '.join(_REQUIRED)}"
        )
    values = {key: data[key] for key in allowed if key in data}
    if isinstance(values["nodes"], dict):
        values["nodes"] = _range(NodeRange, values["nodes"], "nodes", source, "{min: M, max: M}")
    # `hyperparameters:` followed only by commented-out entries reads as null: nothing searched.
    hyperparameters = values.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise SearchSpaceError(
            f"{source}: hyperparameters must be a mapping of recipe field to "
            f"{{low, high, log}}, got {hyperparameters!r}; allowed fields: {_HYPERPARAMETER_NAMES}"
        )
    pairs = []
    for name, spec in hyperparameters.items():
        try:
            _check_hyperparameter_name(name)
        except SearchSpaceError as problem:
            raise SearchSpaceError(f"{source}: {problem}") from None
        example = "{low: X, high: Y, log: false}"
        pairs.append((name, _range(NumericRange, spec, f"hyperparameters.{name}", source, example)))
    values["hyperparameters"] = tuple(pairs)
    try:
        return SearchSpace(**values)
    except SearchSpaceError as problem:
        raise SearchSpaceError(f"{source}: {problem}") from None


def _find(spec: str | Path) -> Path:
    text = str(spec)
    if not Path(text).is_file() and (
        Path(text).suffix in (".yaml", ".yml") or "/" in text or "\\" in text
    ):
        raise SearchSpaceError(f"{text}: no such search space file")
    # a local file shadows a registered name, as local recipes under trainers/ do
    registered = {name: Path(SEARCH_SPACES.get(name)) for name in SEARCH_SPACES.names()}
    path, known = find_named_yaml(text, _FOLDER, registered)
    if path is None:
        raise SearchSpaceError(
            f"{text}: unknown search space; known search spaces: {', '.join(known)} "
            "(or give the path of a YAML file)"
        )
    return path


def load_search_space(spec: str | Path) -> SearchSpace:
    """The search space in a YAML file, or by name (``paper``, ``demo``) from ./search_spaces/,
    the :data:`SEARCH_SPACES` registry, then the repository's search_spaces/."""
    path = _find(spec)
    return search_space_from_dict(load_yaml(path, SearchSpaceError), str(path))


# ---------------------------------------------------------------------------------------------
# Sampling and decoding


def _gate_choices(space: SearchSpace, source: int, target: int) -> tuple[str, ...]:
    if source != target:
        return space.edge_gates
    if target == 0 or not space.allow_frozen:
        return tuple(gate for gate in space.self_loop_gates if gate != CUTOFF)
    return space.self_loop_gates


def suggest_config(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Samples one graph (and hyperparameters) of ``space`` on an Optuna trial, define-by-run.

    Only ``suggest_int`` / ``suggest_categorical`` / ``suggest_float`` are called, so Ray's
    captor wrapper works too. Returns ``{parameter name: value}`` of what was sampled.
    """
    config: dict[str, Any] = {}
    num_nodes = space.nodes.min
    if space.nodes.min < space.nodes.max:
        num_nodes = config["num_nodes"] = trial.suggest_int(
            "num_nodes", space.nodes.min, space.nodes.max
        )
    for node in range(1, num_nodes):
        config[f"model_{node}"] = trial.suggest_categorical(f"model_{node}", list(space.models))
    for source in range(num_nodes):
        for target in range(num_nodes):
            name = f"gate_{source}_{target}"
            config[name] = trial.suggest_categorical(
                name, list(_gate_choices(space, source, target))
            )
    for name, numeric in space.hyperparameters:
        config[f"hp_{name}"] = trial.suggest_float(
            f"hp_{name}", numeric.low, numeric.high, log=numeric.log
        )
    models = [space.target_model] + [config[f"model_{n}"] for n in range(1, num_nodes)]
    for node, model in enumerate(models):
        for name, choices in _option_choices(space, config, node, model, num_nodes):
            config[name] = trial.suggest_categorical(name, list(choices))
            if name == f"heads_{node}" and config[name] > 1 and len(space.split) > 1:
                config[f"split_{node}"] = trial.suggest_categorical(
                    f"split_{node}", list(space.split)
                )
    return config


def _option_choices(
    space: SearchSpace, config: dict[str, Any], node: int, model: str, num_nodes: int
) -> list[tuple[str, tuple[Any, ...]]]:
    """The option parameters node ``node`` samples, given its model and its sampled gates."""
    if not space.collaborative:
        return []  # and no model_traits: its first meta-device build costs a second
    traits = model_traits(model)
    gates = [config[f"gate_{s}_{node}"] for s in range(num_nodes)]
    if traits is None or all(g == CUTOFF for g in gates):
        return []  # no layout to act on, or a frozen node (it learns nothing)
    self_loop = gates[node] != CUTOFF
    choices: list[tuple[str, tuple[Any, ...]]] = []
    if len(space.heads) > 1 and self_loop:
        choices.append((f"heads_{node}", space.heads))
    for name in space.intra:
        if traits.supports(name) is None and (name != "out" or self_loop):
            choices.append((f"intra_{node}_{name}", (False, True)))
    return choices


def _node_options(
    config: dict[str, Any], space: SearchSpace, node: int, model: str, self_loop: bool
) -> NodeOptions | None:
    if not space.collaborative or model_traits(model) is None:
        return None  # no layout to act on (see _option_choices)
    fixed = space.heads[0] if len(space.heads) == 1 and self_loop else 1
    heads = config.get(f"heads_{node}", fixed)
    intra = [name for name in space.intra if config.get(f"intra_{node}_{name}") is True]
    if heads == 1 and not intra:
        return None
    attrs: dict[str, Any] = {"model": model, "heads": heads, "intra": intra}
    split = config.get(f"split_{node}", space.split[0])
    if heads > 1 and split != DEFAULT_SPLIT:
        attrs["split"] = split
    try:
        options = node_options(attrs, f"node {node}")
    except ValueError as problem:
        raise SearchSpaceError(f"{_TRIAL}: {problem}") from None
    return options if options.collaborative else None


def _choice(config: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    if key not in config:
        raise SearchSpaceError(
            f"{_TRIAL}: missing parameter {key!r}; expected a config that suggest_config "
            "sampled from this search space"
        )
    value = config[key]
    if value not in choices:
        raise SearchSpaceError(
            f"{_TRIAL}: {key} is {value!r}; allowed values: {', '.join(choices)}"
        )
    return value


def config_to_graph(
    config: dict[str, Any], space: SearchSpace
) -> tuple[nx.DiGraph, dict[str, float]]:
    """The validated graph and the hyperparameters ``{name: value}`` of a sampled config.

    Keys the space does not define (Ray adds its own) are ignored; a config that does not
    fit the space (a missing parameter, a value outside its choices) raises SearchSpaceError.
    """
    num_nodes = config.get("num_nodes", space.nodes.min)
    if not _is_int(num_nodes) or not space.nodes.min <= num_nodes <= space.nodes.max:
        raise SearchSpaceError(
            f"{_TRIAL}: num_nodes is {num_nodes!r}; allowed: {space.nodes.min}..{space.nodes.max}"
        )
    num_nodes = int(num_nodes)
    models = [space.target_model]
    models += [_choice(config, f"model_{node}", space.models) for node in range(1, num_nodes)]
    gates = {
        (s, t): _choice(config, f"gate_{s}_{t}", _gate_choices(space, s, t))
        for s in range(num_nodes)
        for t in range(num_nodes)
    }
    graph = nx.DiGraph()
    for node, model in enumerate(models):
        learns = any(gates[s, node] != CUTOFF for s in range(num_nodes))
        graph.add_node(node, model=model, frozen=node != 0 and space.allow_frozen and not learns)
        self_loop = gates[node, node] != CUTOFF
        options = _node_options(config, space, node, model, self_loop) if learns else None
        if options is not None:
            graph.nodes[node]["options"] = options
    for (s, t), gate in gates.items():
        if gate != CUTOFF:
            graph.add_edge(s, t, gate=gate)
    hyperparameters = {}
    for name, _ in space.hyperparameters:
        key = f"hp_{name}"
        if key not in config:
            raise SearchSpaceError(f"{_TRIAL}: missing parameter {key!r}")
        hyperparameters[name] = float(config[key])
    return validate_graph(graph, _TRIAL), hyperparameters


def apply_hyperparameters(recipe: Recipe, hyperparameters: dict[str, float]) -> Recipe:
    """``recipe`` with the searched fields replaced (dotted names reach into ``optimizer``).

    A value the recipe refuses (e.g. momentum 0 with Nesterov) raises its RecipeError.
    """
    top: dict[str, Any] = {}
    optimizer: dict[str, Any] = {}
    for name, value in hyperparameters.items():
        if name not in _HYPERPARAMETERS:
            raise SearchSpaceError(
                f"hyperparameter {name!r} is not a searchable recipe field; "
                f"allowed: {_HYPERPARAMETER_NAMES}"
            )
        group, _, field = name.rpartition(".")
        (optimizer if group == "optimizer" else top)[field] = float(value)
    if optimizer:
        # One replace for all optimizer fields, so their joint checks see the final values.
        top["optimizer"] = dataclasses.replace(recipe.optimizer, **optimizer)
    return dataclasses.replace(recipe, **top) if top else recipe

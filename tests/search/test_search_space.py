"""Search spaces: the shipped YAMLs, strict parsing, Optuna sampling and decoding into graphs."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from dcl_search._errors import RecipeError, SearchSpaceError
from dcl_search.graphs import gate_of
from dcl_search.search import (
    SEARCH_SPACES,
    NodeRange,
    NumericRange,
    SearchSpace,
    apply_hyperparameters,
    config_to_graph,
    load_search_space,
    search_space_from_dict,
    suggest_config,
)
from dcl_search.training import Recipe

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
PAPER_GATES = ("through", "cutoff", "linear", "correct")
HP_NAMES = "temperature, optimizer.lr, optimizer.momentum, optimizer.weight_decay"

BASE = """\
nodes: 3
target_model: resnet32
models: [resnet32, resnet110, wrn28_2]
edge_gates: [through, cutoff, linear, correct]
self_loop_gates: [through, cutoff, linear, correct]
"""


def _space(**changes) -> SearchSpace:
    values = dict(
        nodes=3,
        target_model="resnet32",
        models=("resnet32", "resnet110", "wrn28_2"),
        edge_gates=PAPER_GATES,
        self_loop_gates=PAPER_GATES,
    )
    values.update(changes)
    return SearchSpace(**values)


def _trials(space: SearchSpace, count: int, seed: int = 0):
    """``count`` real Optuna trials sampled by the random sampler, with their configs."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(count):
        trial = study.ask()
        config = suggest_config(trial, space)
        study.tell(trial, 0.0)
        yield trial, config


def _gate_names(m: int) -> set[str]:
    return {f"gate_{s}_{t}" for s in range(m) for t in range(m)}


# --- shipped files ----------------------------------------------------------------------------


def test_paper_space_has_the_papers_values() -> None:
    space = load_search_space(SPACES / "paper.yaml")
    assert space == SearchSpace(
        nodes=NodeRange(3, 3),
        target_model="resnet32",
        models=("resnet32", "resnet110", "wrn28_2"),
        edge_gates=PAPER_GATES,
        self_loop_gates=PAPER_GATES,
        allow_frozen=True,
        hyperparameters=(),
    )
    assert load_search_space("paper") == space
    assert hash(space) == hash(load_search_space("paper"))  # hashable: usable as a cache key


def test_demo_space_has_quick_models() -> None:
    space = load_search_space("demo")
    assert space.nodes == NodeRange(3, 3)
    assert space.target_model == "tiny_cnn"
    assert space.models == ("tiny_cnn", "mlp", "resnet20")
    assert space.edge_gates == PAPER_GATES and space.self_loop_gates == PAPER_GATES
    assert space.allow_frozen is True and space.hyperparameters == ()
    assert Path(SEARCH_SPACES.get("demo")) == SPACES / "demo.yaml"


def test_unknown_name_lists_the_shipped_spaces() -> None:
    with pytest.raises(SearchSpaceError, match=r"nope: unknown search space; .*demo, paper"):
        load_search_space("nope")
    with pytest.raises(SearchSpaceError, match=r"missing\.yaml: no such"):
        load_search_space("missing.yaml")


def test_local_search_spaces_folder_and_registry(tmp_path, monkeypatch) -> None:
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "mine.yaml").write_text(BASE.replace("3", "2", 1))
    monkeypatch.chdir(tmp_path)
    assert load_search_space("mine").nodes == NodeRange(2, 2)
    other = tmp_path / "elsewhere.yaml"
    other.write_text(BASE.replace("3", "4", 1))
    SEARCH_SPACES.register("test_registered_space")(other)
    try:
        assert load_search_space("test_registered_space").nodes == NodeRange(4, 4)
    finally:
        SEARCH_SPACES._entries.pop("test_registered_space")


def test_yaml_forms_range_hyperparameters_and_round_trip(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        BASE.replace("nodes: 3", "nodes: {min: 2, max: 7}")
        + "allow_frozen: false\n"
        + "hyperparameters:\n"
        + "  optimizer.lr: {low: 0.01, high: 0.2, log: true}\n"
        + "  temperature: {low: 1, high: 4}\n"
    )
    space = load_search_space(path)
    assert space.nodes == NodeRange(2, 7)
    assert space.allow_frozen is False
    assert space.hyperparameters == (
        ("optimizer.lr", NumericRange(0.01, 0.2, True)),
        ("temperature", NumericRange(1.0, 4.0, False)),
    )
    # the dict form a search stores (nodes as a mapping, hyperparameters as mappings) reads back
    again = search_space_from_dict(
        {
            "nodes": {"min": 2, "max": 7},
            "target_model": "resnet32",
            "models": ["resnet32", "resnet110", "wrn28_2"],
            "edge_gates": list(PAPER_GATES),
            "self_loop_gates": list(PAPER_GATES),
            "allow_frozen": False,
            "hyperparameters": {
                "temperature": {"low": 1.0, "high": 4.0, "log": False},
                "optimizer.lr": {"low": 0.01, "high": 0.2, "log": True},
            },
        }
    )
    assert again == space


# --- refused files ----------------------------------------------------------------------------

BAD_CASES = [
    (BASE + "colour: red\n", r"unknown key 'colour'; allowed keys: nodes, target_model"),
    (BASE.replace("target_model: resnet32\n", ""), r"missing key 'target_model'"),
    (BASE.replace("nodes: 3", "nodes: 0"), r"nodes is 0, but must be >= 1"),
    (BASE.replace("nodes: 3", "nodes: true"), r"nodes must be an int or a mapping"),
    (BASE.replace("nodes: 3", "nodes: {min: 5, max: 3}"), r"nodes: min is 5, but must be <= max"),
    (BASE.replace("nodes: 3", "nodes: {min: 0, max: 3}"), r"nodes: min is 0, but must be >= 1"),
    (BASE.replace("nodes: 3", "nodes: {min: 2, maks: 3}"), r"nodes: unknown key 'maks'"),
    (BASE.replace("nodes: 3", "nodes: {min: 2}"), r"nodes lacks the key 'max'"),
    (
        BASE.replace("target_model: resnet32", "target_model: resnet33"),
        r"target_model is 'resnet33', not a registered model; known models: mlp, resnet110",
    ),
    (
        BASE.replace("wrn28_2]", "vgg19]"),
        r"models\[2\] is 'vgg19', not a registered model; known models: mlp",
    ),
    (
        BASE.replace("edge_gates: [through,", "edge_gates: [half,"),
        r"edge_gates\[0\] is 'half', not a registered gate; known gates: correct, cutoff, "
        r"linear, negative_linear, through",
    ),
    (
        BASE.replace("self_loop_gates: [through,", "self_loop_gates: [thru,"),
        r"self_loop_gates\[0\] is 'thru', not a registered gate; known gates: correct",
    ),
    (BASE.replace("models: [resnet32, resnet110, wrn28_2]", "models: []"), r"models is empty"),
    (
        BASE.replace("edge_gates: [through, cutoff, linear, correct]", "edge_gates: []"),
        r"edge_gates is empty",
    ),
    (
        BASE.replace("models: [resnet32, resnet110, wrn28_2]", "models: resnet32"),
        r"models must be a list",
    ),
    (BASE.replace("wrn28_2]", "resnet32]"), r"models lists 'resnet32' twice"),
    (
        BASE + "hyperparameters:\n  batch_size: {low: 32, high: 128}\n",
        rf"hyperparameters\.batch_size is not a searchable recipe field; allowed: {HP_NAMES}",
    ),
    (
        BASE + "hyperparameters:\n  temperature: {low: 4.0, high: 1.0}\n",
        r"hyperparameters\.temperature: low is 4\.0, but must be <= high \(1\.0\)",
    ),
    (
        BASE + "hyperparameters:\n  optimizer.weight_decay: {low: 0.0, high: 0.001, log: true}\n",
        r"hyperparameters\.optimizer\.weight_decay: low is 0\.0, but must be > 0 when log is true",
    ),
    (
        BASE + "hyperparameters:\n  temperature: {low: 0.0, high: 2.0}\n",
        r"hyperparameters\.temperature\.low is 0\.0, but temperature must be > 0",
    ),
    (
        BASE + "hyperparameters:\n  optimizer.momentum: {low: 0.5, high: 1.0}\n",
        r"hyperparameters\.optimizer\.momentum\.high is 1\.0, but optimizer\.momentum must be in \[0, 1\)",
    ),
    (
        BASE + "hyperparameters:\n  temperature: {low: 1.0, hi: 2.0}\n",
        r"hyperparameters\.temperature: unknown key 'hi'; allowed keys: low, high, log",
    ),
    (
        BASE + "hyperparameters:\n  temperature: 2.0\n",
        r"hyperparameters\.temperature must be a mapping",
    ),
    (BASE + "hyperparameters: [temperature]\n", r"hyperparameters must be a mapping"),
    (BASE + "allow_frozen: maybe\n", r"allow_frozen must be true or false, got 'maybe'"),
    (
        BASE.replace(
            "self_loop_gates: [through, cutoff, linear, correct]", "self_loop_gates: [cutoff]"
        )
        + "allow_frozen: false\n",
        r"self_loop_gates is \['cutoff'\] only, .*allow_frozen: false.*; add one of: correct",
    ),
    ("- just a list\n", r"expected a mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES)
def test_bad_search_space_is_refused_naming_file_and_key(tmp_path, text, message) -> None:
    path = tmp_path / "bad_space.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError, match=re.escape(str(path)) + ": " + message) as info:
        load_search_space(path)
    assert "\n" not in str(info.value)


def test_self_loops_of_only_cutoff_are_refused_even_with_frozen_nodes() -> None:
    # node 0's self-loop never samples cutoff, so no choice would be left for it
    with pytest.raises(SearchSpaceError, match=r"self_loop_gates is \['cutoff'\] only"):
        _space(self_loop_gates=("cutoff",))


# --- sampling ---------------------------------------------------------------------------------


def test_suggested_names_for_three_fixed_nodes() -> None:
    space = _space(hyperparameters={"temperature": NumericRange(1.0, 4.0)})
    (trial, config), *_ = _trials(space, 1)
    expected = {"model_1", "model_2", "hp_temperature"} | _gate_names(3)
    assert set(trial.params) == expected
    assert set(config) == expected
    assert config == trial.params
    assert 1.0 <= config["hp_temperature"] <= 4.0
    assert trial.distributions["gate_0_0"].choices == ("through", "linear", "correct")
    assert trial.distributions["gate_1_1"].choices == PAPER_GATES
    assert trial.distributions["gate_0_1"].choices == PAPER_GATES
    assert trial.distributions["model_1"].choices == ("resnet32", "resnet110", "wrn28_2")


def test_a_node_range_samples_num_nodes_and_only_its_names() -> None:
    space = _space(nodes=NodeRange(2, 5))
    seen = set()
    for trial, config in _trials(space, 40):
        m = config["num_nodes"]
        seen.add(m)
        expected = {"num_nodes"} | {f"model_{i}" for i in range(1, m)} | _gate_names(m)
        assert set(trial.params) == expected
        assert f"model_{m}" not in config and f"gate_0_{m}" not in config
        assert config_to_graph(config, space)[0].number_of_nodes() == m
    assert seen == {2, 3, 4, 5}


def test_one_node_space_samples_only_the_target_self_loop() -> None:
    (trial, config), *_ = _trials(_space(nodes=1), 1)
    assert set(trial.params) == {"gate_0_0"}
    graph, hyperparameters = config_to_graph(config, _space(nodes=1))
    assert list(graph.nodes) == [0] and hyperparameters == {}


def test_200_samples_are_valid_graphs_with_frozen_nodes_where_nothing_teaches() -> None:
    space = _space(nodes=NodeRange(2, 4))
    frozen_seen = 0
    for _, config in _trials(space, 200, seed=1):
        assert config["gate_0_0"] != "cutoff"
        graph, _ = config_to_graph(config, space)  # validated, so no exception means valid
        m = config["num_nodes"]
        assert graph.nodes[0] == {"model": "resnet32", "frozen": False}
        for t in range(1, m):
            all_cutoff = all(config[f"gate_{s}_{t}"] == "cutoff" for s in range(m))
            assert graph.nodes[t]["frozen"] is all_cutoff
            assert graph.nodes[t]["model"] == config[f"model_{t}"]
            frozen_seen += all_cutoff
        for s in range(m):
            for t in range(m):
                assert gate_of(graph, s, t) == config[f"gate_{s}_{t}"]
    assert frozen_seen > 0  # the check above really met frozen nodes


def test_without_frozen_nodes_no_self_loop_is_cutoff() -> None:
    space = _space(allow_frozen=False)
    for _, config in _trials(space, 200, seed=2):
        for t in range(3):
            assert config[f"gate_{t}_{t}"] != "cutoff"
        graph, _ = config_to_graph(config, space)
        assert not any(frozen for _, frozen in graph.nodes(data="frozen"))


# --- decoding ---------------------------------------------------------------------------------


def test_config_to_graph_gives_the_exact_graph() -> None:
    space = _space(hyperparameters={"optimizer.lr": NumericRange(0.01, 0.2, log=True)})
    gates = {
        (0, 0): "through",
        (1, 0): "linear",
        (2, 0): "correct",
        (0, 1): "cutoff",
        (1, 1): "through",
        (2, 1): "through",
        (0, 2): "cutoff",
        (1, 2): "cutoff",
        (2, 2): "cutoff",
    }
    config = {f"gate_{s}_{t}": gate for (s, t), gate in gates.items()}
    config |= {"model_1": "resnet110", "model_2": "resnet32", "hp_optimizer.lr": 0.05}
    config["training_iteration"] = 7  # Ray's own keys are ignored
    graph, hyperparameters = config_to_graph(config, space)
    assert dict(graph.nodes(data=True)) == {
        0: {"model": "resnet32", "frozen": False},
        1: {"model": "resnet110", "frozen": False},
        2: {"model": "resnet32", "frozen": True},
    }
    assert sorted(graph.edges(data="gate")) == [
        (0, 0, "through"),
        (1, 0, "linear"),
        (1, 1, "through"),
        (2, 0, "correct"),
        (2, 1, "through"),
    ]
    assert hyperparameters == {"optimizer.lr": 0.05}


def test_config_that_does_not_fit_the_space_is_refused() -> None:
    space = _space(nodes=2)
    config = {"model_1": "resnet32", "gate_0_0": "through", "gate_0_1": "through"}
    config |= {"gate_1_0": "cutoff", "gate_1_1": "through"}
    config_to_graph(config, space)
    with pytest.raises(SearchSpaceError, match=r"missing parameter 'gate_1_1'"):
        config_to_graph({k: v for k, v in config.items() if k != "gate_1_1"}, space)
    with pytest.raises(
        SearchSpaceError, match=r"gate_0_0 is 'cutoff'; allowed values: through, linear, correct"
    ):
        config_to_graph(config | {"gate_0_0": "cutoff"}, space)
    with pytest.raises(SearchSpaceError, match=r"model_1 is 'mlp'; allowed values: resnet32"):
        config_to_graph(config | {"model_1": "mlp"}, space)
    with pytest.raises(SearchSpaceError, match=r"num_nodes is 3; allowed: 2\.\.2"):
        config_to_graph(config | {"num_nodes": 3}, space)


# --- overrides --------------------------------------------------------------------------------


def test_with_nodes() -> None:
    space = load_search_space("paper")
    assert space.with_nodes(4).nodes == NodeRange(4, 4)
    ranged = space.with_nodes((2, 7))
    assert ranged.nodes == NodeRange(2, 7)
    assert ranged.models == space.models and ranged.edge_gates == space.edge_gates
    assert space.nodes == NodeRange(3, 3)  # frozen: the original is unchanged
    with pytest.raises(
        SearchSpaceError, match=r"nodes override \(5, 2\): min is 5, but must be <= max"
    ):
        space.with_nodes((5, 2))
    with pytest.raises(SearchSpaceError, match=r"nodes override 0: min is 0, but must be >= 1"):
        space.with_nodes(0)


def test_apply_hyperparameters() -> None:
    recipe = Recipe()
    tuned = apply_hyperparameters(
        recipe,
        {"temperature": 2.5, "optimizer.lr": 0.05, "optimizer.weight_decay": 1e-4},
    )
    assert tuned.temperature == 2.5
    assert tuned.optimizer.lr == 0.05
    assert tuned.optimizer.weight_decay == 1e-4
    assert tuned.optimizer.momentum == 0.9 and tuned.optimizer.nesterov is True
    assert (tuned.epochs, tuned.batch_size) == (recipe.epochs, recipe.batch_size)
    assert apply_hyperparameters(recipe, {}) == recipe
    assert recipe.temperature == 1.0 and recipe.optimizer.lr == 0.1
    with pytest.raises(SearchSpaceError, match=rf"hyperparameter 'epochs' .*; allowed: {HP_NAMES}"):
        apply_hyperparameters(recipe, {"epochs": 3.0})
    with pytest.raises(RecipeError, match=r"nesterov needs momentum > 0"):
        apply_hyperparameters(recipe, {"optimizer.momentum": 0.0})


def test_sampled_hyperparameters_reach_the_recipe() -> None:
    space = _space(
        hyperparameters={
            "temperature": NumericRange(1.0, 4.0),
            "optimizer.lr": NumericRange(0.01, 0.2, log=True),
        }
    )
    for _, config in _trials(space, 20, seed=3):
        _, hyperparameters = config_to_graph(config, space)
        recipe = apply_hyperparameters(Recipe(), hyperparameters)
        assert recipe.temperature == config["hp_temperature"]
        assert recipe.optimizer.lr == config["hp_optimizer.lr"]
        assert 0.01 <= recipe.optimizer.lr <= 0.2


# --- collaborative options (heads, split, intra) --------------------------------------------


def test_collab_options_are_sampled_only_where_they_apply() -> None:
    space = load_search_space("collab_demo")
    assert (space.heads, space.split, space.intra) == (
        (1, 2),
        ("default", "multi-instance"),
        ("out", "mid", "pull_push", "kernel"),
    )
    seen = {"heads": 0, "multi": 0, "out": 0, "mid_mlp": 0}
    for _, config in _trials(space, 150, seed=3):
        graph, _ = config_to_graph(config, space)
        for node in range(2):
            model = graph.nodes[node]["model"]
            options = graph.nodes[node].get("options")
            self_loop = config[f"gate_{node}_{node}"] != "cutoff"
            assert (f"heads_{node}" in config) == self_loop
            assert (f"intra_{node}_out" in config) == (self_loop and model == "tiny_cnn_fc")
            assert (f"intra_{node}_mid" in config) == (model != "mlp")  # mlp has no feature maps
            heads = config.get(f"heads_{node}", 1)
            intra = [n for n in space.intra if config.get(f"intra_{node}_{n}")]
            if heads == 1 and not intra:
                assert options is None
                continue
            assert options.heads == heads
            assert [name for name, _ in options.intra] == sorted(intra)
            if heads > 1:
                split = config.get(f"split_{node}")
                default = "hidden1" if model == "mlp" else "layer2"  # second-to-last stage
                expected = "multi-instance" if split == "multi-instance" else default
                assert options.split == expected
                seen["multi"] += split == "multi-instance"
            seen["heads"] += heads > 1
            seen["out"] += "out" in intra
    assert seen["heads"] and seen["multi"] and seen["out"]


def test_a_fixed_heads_value_applies_to_every_node_whose_self_loop_teaches() -> None:
    space = _space(nodes=2, models=("resnet32",), heads=(4,), edge_gates=("through",))
    for _, config in _trials(space, 20, seed=2):
        graph, _ = config_to_graph(config, space)
        for node in range(2):
            options = graph.nodes[node].get("options")
            if config[f"gate_{node}_{node}"] == "cutoff":
                assert options is None
            else:
                assert (options.heads, options.split) == (4, "stage2")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"heads": (0, 2)}, "heads must be a list of distinct integers >= 1"),
        ({"intra": ("dropout",)}, "intra[0] is 'dropout', not a registered intra-model option"),
        (
            {"heads": (1, 2), "split": ("stage3",)},
            "split 'stage3' is not a split point of resnet32; allowed for it: default, multi-instance",
        ),
    ],
)
def test_bad_collab_options_in_a_space_are_refused(changes, message) -> None:
    with pytest.raises(SearchSpaceError) as caught:
        _space(**changes)
    assert message in str(caught.value)

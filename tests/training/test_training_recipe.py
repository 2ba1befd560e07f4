"""Recipes: the YAML files under trainers/, strict parsing, and the learning-rate schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dcl_search._errors import RecipeError
from dcl_search.training import Recipe, learning_rate, load_recipe, recipe_from_dict

TRAINERS = Path(__file__).resolve().parents[2] / "trainers"
TOP_KEYS = (
    "epochs, batch_size, optimizer, schedule, augment, temperature, precision, channels_last, "
    "eval_batch_size"
)


def _write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_paper_recipe_has_the_papers_values() -> None:
    recipe = load_recipe(TRAINERS / "paper.yaml")
    assert (recipe.epochs, recipe.batch_size) == (200, 64)
    opt = recipe.optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (
        "sgd",
        0.1,
        0.9,
        True,
        5e-4,
    )
    assert recipe.schedule.name == "multistep"
    assert recipe.schedule.milestones == (60, 120, 180)
    assert recipe.schedule.gamma == 0.1
    assert (recipe.augment.crop_padding, recipe.augment.flip) == (4, True)
    assert recipe.temperature == 1.0
    assert recipe == Recipe()  # the dataclass defaults are the paper's recipe


def test_demo_recipe_parses() -> None:
    recipe = load_recipe(TRAINERS / "demo.yaml")
    assert (recipe.epochs, recipe.schedule.name, recipe.schedule.milestones) == (30, "cosine", ())
    assert (recipe.augment.crop_padding, recipe.augment.flip) == (1, False)
    assert (recipe.precision, recipe.channels_last) == ("fp32", "off")
    assert recipe.optimizer.weight_decay == 5e-4 and isinstance(
        recipe.optimizer.weight_decay, float
    )


@pytest.mark.parametrize(
    ("epoch", "lr"),
    [
        (0, 0.1),
        (59, 0.1),
        (59.99, 0.1),
        (60, 0.01),
        (119, 0.01),
        (120, 1e-3),
        (180, 1e-4),
        (199, 1e-4),
    ],
)
def test_paper_multistep_learning_rate(epoch, lr) -> None:
    assert learning_rate(load_recipe(TRAINERS / "paper.yaml"), epoch) == pytest.approx(lr, rel=1e-9)


def test_cosine_learning_rate_by_hand() -> None:
    recipe = recipe_from_dict(
        {"epochs": 10, "optimizer": {"lr": 0.2}, "schedule": {"name": "cosine", "milestones": []}}
    )
    for epoch in (0, 1, 2.5, 5, 9, 10):
        expected = 0.2 * 0.5 * (1 + math.cos(math.pi * epoch / 10))
        assert learning_rate(recipe, epoch) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert learning_rate(recipe, 0) == pytest.approx(0.2)
    assert learning_rate(recipe, 5) == pytest.approx(0.1)
    assert learning_rate(recipe, 10) == pytest.approx(0.0, abs=1e-15)


def test_constant_and_warmup_learning_rate() -> None:
    constant = recipe_from_dict({"optimizer": {"lr": 0.03}, "schedule": {"name": "constant"}})
    assert [learning_rate(constant, e) for e in (0, 100, 199)] == [0.03, 0.03, 0.03]
    warm = recipe_from_dict({"schedule": {"warmup_epochs": 4}})
    assert [learning_rate(warm, e) for e in range(4)] == pytest.approx([0.02, 0.04, 0.06, 0.08])
    assert learning_rate(warm, 4) == pytest.approx(0.1)
    assert learning_rate(warm, 60) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("epochs: 3\nepoch: 4\n", "'epoch'", TOP_KEYS),
        (
            "optimizer:\n  lrr: 0.1\n",
            "'optimizer.lrr'",
            "name, lr, momentum, nesterov, weight_decay",
        ),
        ("augment:\n  crop: 4\n", "'augment.crop'", "crop_padding, flip"),
        ("schedule:\n  milestone: [1]\n", "'schedule.milestone'", "name, milestones, gamma"),
    ],
)
def test_unknown_key_is_refused_naming_file_key_and_allowed(tmp_path, text, key, allowed) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}:")
    assert f"unknown key {key}" in message
    assert f"allowed keys: {allowed}" in message


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        ("optimizer:\n  lr: -1\n", "optimizer.lr", "-1"),
        ("precision: fp16\n", "precision", "fp16"),
        ("epochs: 0\n", "epochs", "0"),
        ("batch_size: -3\n", "batch_size", "-3"),
        ("optimizer:\n  momentum: 1.5\n", "optimizer.momentum", "1.5"),
        ("schedule:\n  name: step\n", "schedule.name", "step"),
        ("schedule:\n  milestones: [120, 60]\n", "schedule.milestones", "[120, 60]"),
        ("augment:\n  crop_padding: -1\n", "augment.crop_padding", "-1"),
        ("temperature: 0\n", "temperature", "0"),
        ("epochs: ten\n", "epochs", "ten"),
        ("optimizer:\n  lr: true\n", "optimizer.lr", "True"),
        ("epochs: 2.5\n", "epochs", "2.5"),
        ("schedule: cosine\n", "schedule", "cosine"),
    ],
)
def test_bad_value_is_refused_naming_the_key(tmp_path, text, key, shown) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {key}")
    assert shown in message


def test_precision_error_lists_the_allowed_values() -> None:
    with pytest.raises(RecipeError, match="precision is 'fp16'; allowed values: auto, fp32, bf16"):
        recipe_from_dict({"precision": "fp16"}, "override")


def test_yaml_quirks_are_read_as_meant(tmp_path) -> None:
    # YAML 1.1 (PyYAML) reads 5e-4 as a string and on/off as booleans
    path = _write(
        tmp_path,
        "optimizer:\n  weight_decay: 5e-4\n  lr: 1e-2\nchannels_last: off\ntemperature: 4\n",
    )
    recipe = load_recipe(path)
    assert recipe.optimizer.weight_decay == 5e-4
    assert isinstance(recipe.optimizer.weight_decay, float)
    assert recipe.optimizer.lr == 0.01
    assert recipe.channels_last == "off"
    assert recipe.temperature == 4.0 and isinstance(recipe.temperature, float)
    assert load_recipe(_write(tmp_path, "channels_last: on\n", "on.yaml")).channels_last == "on"


def test_missing_and_malformed_files_are_named(tmp_path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(RecipeError, match="no such file") as error:
        load_recipe(missing)
    assert str(missing) in str(error.value)
    broken = _write(tmp_path, "epochs: [1,\n", "broken.yaml")
    with pytest.raises(RecipeError, match="not valid YAML") as error:
        load_recipe(broken)
    assert str(broken) in str(error.value)
    listed = _write(tmp_path, "- 1\n- 2\n", "list.yaml")
    with pytest.raises(RecipeError, match="mapping") as error:
        load_recipe(listed)
    assert str(listed) in str(error.value)


def test_recipe_round_trips_through_to_dict_and_digest() -> None:
    recipe = load_recipe(TRAINERS / "paper.yaml")
    again = recipe_from_dict(recipe.to_dict())
    assert again == recipe and again.digest() == recipe.digest()
    assert recipe.with_epochs(10).digest() != recipe.digest()
    assert recipe.with_epochs(10).epochs == 10 and recipe.epochs == 200
    assert len(recipe.digest()) == 16


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("optimizer:\n  lr: nan\n", "optimizer.lr"),
        ("optimizer:\n  lr: .inf\n", "optimizer.lr"),
        ("optimizer:\n  weight_decay: .nan\n", "optimizer.weight_decay"),
        ("temperature: .nan\n", "temperature"),
    ],
    ids=["lr-nan-string", "lr-inf", "weight_decay-nan", "temperature-nan"],
)
def test_non_finite_values_are_refused(tmp_path, text, key) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}: {key}")

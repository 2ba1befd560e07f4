"""The recipe's ``compile``: torch.compile of each node's training call, the same numbers."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from dcl_search._errors import RecipeError, TrainingError
from dcl_search.graphs import preset_graph
from dcl_search.training import CollaborativeTrainer, load_recipe, recipe_from_dict
from dcl_search.training import _trainer as trainer_module

GRAPH = "dml:2:tiny_cnn"


def _recipe(compile_mode: str, epochs: int = 2, precision: str = "fp32"):
    return recipe_from_dict(
        {"epochs": epochs, "batch_size": 64, "compile": compile_mode, "precision": precision}
    )


def _step_losses_and_gradients(trainer: CollaborativeTrainer, digits):
    x = trainer.normalize(digits.train.images[:64], trainer.channels_last)
    y = digits.train.labels[:64]
    losses = trainer.loss(trainer._forward_all(x, y)[0], y, 0.5)
    losses.sum().backward()
    return losses.detach(), [p.grad.clone() for m in trainer.models for p in m.parameters()]


@pytest.mark.skipif(trainer_module._cpp_compiler() is None, reason="inductor needs a C++ compiler")
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-3), ("bf16", 5e-2)])
def test_compiled_training_computes_the_eager_losses_gradients_and_checkpoints(
    digits, tmp_path, precision: str, tolerance: float
) -> None:
    """Compiled and eager round bf16 at different places: the same numbers within its rounding."""
    eager = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe("off", 2, precision), seed=3)
    compiled = CollaborativeTrainer(
        preset_graph(GRAPH), digits, _recipe("default", 2, precision), seed=3
    )
    eager_losses, eager_grads = _step_losses_and_gradients(eager, digits)
    torch._dynamo.reset()  # nothing compiled earlier in this process is reused
    counters.clear()
    losses, grads = _step_losses_and_gradients(compiled, digits)
    assert counters["stats"]["unique_graphs"] >= 1  # the step ran through torch.compile
    assert torch.allclose(losses, eager_losses, rtol=tolerance / 10, atol=tolerance / 100)
    for mine, theirs in zip(grads, eager_grads, strict=True):
        assert torch.allclose(
            mine, theirs, rtol=tolerance, atol=tolerance / 100 * max(1.0, theirs.abs().max().item())
        )
    # checkpoints hold the plain modules' keys: an eager run resumes a compiled one
    compiled.optimizer.zero_grad(set_to_none=True)
    next(compiled.train_epochs(1))
    compiled.save_checkpoint(tmp_path / "run.pt")
    resumed = CollaborativeTrainer(
        preset_graph(GRAPH), digits, _recipe("off", 2, precision), seed=3
    )
    resumed.load_checkpoint(tmp_path / "run.pt")
    assert resumed.epoch == 1
    for mine, theirs in zip(resumed.models, compiled.models, strict=True):
        assert mine.state_dict().keys() == theirs.state_dict().keys()
        assert all(torch.equal(mine.state_dict()[k], v) for k, v in theirs.state_dict().items())


def test_compile_does_not_change_what_a_checkpoint_matches() -> None:
    assert _recipe("default").digest() == _recipe("off").digest()
    assert _recipe("off").digest() != _recipe("off", epochs=3).digest()


def test_unknown_compile_mode_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(RecipeError, match="compile is 'fast'; allowed values: off, default"):
        _recipe("fast")


def test_compile_without_a_cpp_compiler_is_a_clear_error(digits, monkeypatch) -> None:
    monkeypatch.setattr(trainer_module, "_cpp_compiler", lambda: None)
    with pytest.raises(TrainingError, match="compile: default needs a C\\+\\+ compiler"):
        CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe("default"))
    CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe("off"))  # eager needs none


def test_yaml_off_reads_as_compile_off(tmp_path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("epochs: 2\ncompile: off\n")  # YAML 1.1 reads `off` as false
    assert load_recipe(path).compile == "off"
    path.write_text("epochs: 2\ncompile: on\n")
    with pytest.raises(RecipeError, match="compile is True; allowed values: off, default"):
        load_recipe(path)

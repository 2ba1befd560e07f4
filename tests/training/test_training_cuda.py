"""The trainer's CUDA paths (bf16 autocast, channels_last, fused SGD) against the plain ones.

Skipped where torch sees no GPU (CI); run on a GPU machine with ``python -m pytest
tests/training/test_training_cuda.py`` (``benchmarks/gpu_check.sh`` does).
"""

from __future__ import annotations

import pytest
import torch

from dcl_search.graphs import preset_graph
from dcl_search.training import CollaborativeTrainer, recipe_from_dict

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GRAPH = "dml:2:tiny_cnn"


def _recipe(epochs: int = 2, **fields) -> object:
    return recipe_from_dict({"epochs": epochs, "batch_size": 64, **fields})


def _losses_and_gradients(trainer: CollaborativeTrainer, images, labels):
    x = trainer.normalize(images.to(trainer.device), trainer.channels_last)
    y = labels.to(trainer.device)
    with trainer._autocast():
        losses = trainer.loss(trainer._forward_all(x, y)[0], y, 0.5)
    losses.sum().backward()
    grads = [p.grad.float().cpu() for m in trainer.models for p in m.parameters()]
    return losses.detach().float().cpu(), grads


def _assert_close(fast, plain, tolerance: float) -> None:
    """Losses and gradients equal within ``tolerance``, gradients relative to their largest."""
    assert torch.allclose(fast[0], plain[0], rtol=tolerance, atol=tolerance)
    for mine, theirs in zip(fast[1], plain[1], strict=True):
        scale = max(1.0, theirs.abs().max().item())
        assert torch.allclose(mine, theirs, rtol=tolerance, atol=tolerance * scale)


def test_cuda_defaults_are_the_fast_paths(digits) -> None:
    trainer = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe(), device="cuda")
    assert trainer.autocast_dtype is torch.bfloat16
    assert trainer.channels_last
    assert trainer.optimizer.defaults["fused"] is True


def test_cuda_fast_paths_compute_the_plain_cpu_losses_and_gradients(digits) -> None:
    """bf16 autocast + channels_last on the GPU give the fp32 CPU numbers within bf16 rounding."""
    plain = CollaborativeTrainer(
        preset_graph(GRAPH),
        digits,
        _recipe(precision="fp32", channels_last="off"),
        device="cpu",
        seed=3,
    )
    fast = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe(), device="cuda", seed=3)
    for mine, theirs in zip(fast.models, plain.models, strict=True):
        mine.load_state_dict(theirs.state_dict())
    images, labels = digits.train.images[:64], digits.train.labels[:64]
    _assert_close(
        _losses_and_gradients(fast, images, labels),
        _losses_and_gradients(plain, images, labels),
        tolerance=5e-2,
    )


def test_fused_sgd_updates_as_the_per_parameter_loop(digits, per_parameter_sgd) -> None:
    trainer = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe(), device="cuda", seed=1)
    params = [p for m in trainer.models for p in m.parameters()]
    reference, plain = per_parameter_sgd(trainer)
    x = trainer.normalize(digits.train.images[:64].cuda(), trainer.channels_last)
    y = digits.train.labels[:64].cuda()
    for _ in range(3):  # momentum buffers come in from the second step
        with trainer._autocast():
            losses = trainer.loss(trainer._forward_all(x, y)[0], y, 0.5)
        losses.sum().backward()
        for mine, theirs in zip(params, reference, strict=True):
            theirs.grad = mine.grad.clone()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        plain.step()
    for mine, theirs in zip(params, reference, strict=True):
        assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_gpu_memory_does_not_grow_across_epochs(digits) -> None:
    trainer = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe(epochs=4), device="cuda")
    allocated = []
    for _ in trainer.train_epochs():
        torch.cuda.synchronize()
        allocated.append(torch.cuda.memory_allocated())
    # the first epoch creates the momentum buffers; after it nothing may accumulate
    assert allocated[1] == allocated[2] == allocated[3], allocated


def test_cuda_graphs_compute_the_eager_losses_and_gradients(digits) -> None:
    """compile: reduce-overhead (inductor + CUDA graphs) against the eager CUDA step; the third
    call replays the recorded graph (the first two warm up and record)."""
    eager = CollaborativeTrainer(preset_graph(GRAPH), digits, _recipe(), device="cuda", seed=3)
    compiled = CollaborativeTrainer(
        preset_graph(GRAPH), digits, _recipe(compile="reduce-overhead"), device="cuda", seed=3
    )
    for mine, theirs in zip(compiled.models, eager.models, strict=True):
        mine.load_state_dict(theirs.state_dict())
    images, labels = digits.train.images[:64], digits.train.labels[:64]
    for _ in range(3):
        compiled.optimizer.zero_grad(set_to_none=True)
        replayed = _losses_and_gradients(compiled, images, labels)
    _assert_close(replayed, _losses_and_gradients(eager, images, labels), tolerance=2e-2)

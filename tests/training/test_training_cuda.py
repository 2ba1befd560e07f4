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


# -- cuda_graph: on (one graph for the whole step), node_streams: on (a stream per node) -----


# a new learning rate after the first epoch: the step is captured once per rate
_MILESTONE = {"schedule": {"name": "multistep", "milestones": [1], "gamma": 0.5}}


@pytest.mark.parametrize(
    ("cuda_graph", "node_streams"),
    [("on", "off"), ("on", "on"), ("off", "on")],
    ids=["graph", "graph+streams", "streams"],
)
# The same kernels in the same order: only atomics in cuDNN's reductions may differ, and 40
# steps may grow that. A bug (a stale batch, k or learning rate, a missing join) moves the
# losses by far more than these tolerances.
@pytest.mark.parametrize(
    ("precision", "tolerance"), [("fp32", 5e-3), ("auto", 5e-2)], ids=["fp32", "bf16"]
)
def test_graphed_and_streamed_steps_train_as_the_plain_step(
    digits, gated_graph, cuda_graph, node_streams, precision, tolerance
) -> None:
    def train(**how) -> CollaborativeTrainer:
        recipe = _recipe(2, precision=precision, **how, **_MILESTONE)
        trainer = CollaborativeTrainer(gated_graph, digits, recipe, device="cuda", seed=5)
        list(trainer.train_epochs())
        return trainer

    fast = train(cuda_graph=cuda_graph, node_streams=node_streams)
    plain = train()
    assert plain.step_graph is None and plain.node_streams is None
    assert (fast.node_streams is not None) == (node_streams == "on")
    if cuda_graph == "on":
        assert fast.step_graph.captures == 2
        assert fast.step_graph.replays == fast.total_steps - 3  # after three eager steps
    for mine, theirs in zip(fast.history, plain.history, strict=True):
        assert mine.lr == theirs.lr
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=tolerance)
    for mine, theirs in zip(fast.models, plain.models, strict=True):
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            scale = max(1.0, b.abs().max().item())
            assert torch.allclose(a, b, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("node_streams", ["off", "on"])
def test_whole_step_cuda_graph_memory_does_not_grow(digits, node_streams) -> None:
    constant = {"name": "constant", "milestones": []}
    recipe = _recipe(4, cuda_graph="on", node_streams=node_streams, schedule=constant)
    trainer = CollaborativeTrainer(preset_graph(GRAPH), digits, recipe, device="cuda")
    allocated = []
    for _ in trainer.train_epochs():
        torch.cuda.synchronize()
        allocated.append(torch.cuda.memory_allocated())
    assert trainer.step_graph.captures == 1
    assert allocated[1] == allocated[2] == allocated[3], allocated


@pytest.fixture
def host_reading_gate():
    """A user's gate that reads a value back to the host: no graph can record it."""
    from dcl_search.gates import GATES, Gate, register_gate

    name = "test_host_reading"

    @register_gate(name)
    class HostReading(Gate):
        def __call__(self, per_sample_loss, context):
            return per_sample_loss.mean() * float(per_sample_loss.max().item() >= 0)

    try:
        yield name
    finally:
        GATES._entries.pop(name, None)


def test_a_step_cuda_cannot_capture_trains_on_eagerly(digits, host_reading_gate) -> None:
    graph = preset_graph(GRAPH)
    graph.edges[1, 0]["gate"] = host_reading_gate
    recipe = _recipe(2, cuda_graph="on", precision="fp32")
    trainer = CollaborativeTrainer(graph, digits, recipe, device="cuda", seed=2)
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph"):
        history = list(trainer.train_epochs())
    assert trainer.step_graph is None and trainer.step == trainer.total_steps
    eager = CollaborativeTrainer(graph, digits, _recipe(2, precision="fp32"), device="cuda", seed=2)
    list(eager.train_epochs())
    for mine, theirs in zip(history, eager.history, strict=True):
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=2e-3)

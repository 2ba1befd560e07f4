"""The whole-step CUDA graph (``cuda_graph: on``) on the CPU, with a stand-in for the capture.

CUDA graphs need a GPU (tests/training/test_training_cuda.py runs the real ones). Here a
recording stand-in takes their place: capturing records the step without running it, and each
replay runs the recording again on the static tensors, as a graph's kernels would. What these
tests can fail on is the trainer's side of the contract: the batch, labels and k / k_end
refilled before every replay, the learning rate re-captured when it changes, a checkpoint's
new optimizer state re-captured, a failed capture trained on eagerly, and the steps counted.
"""

from __future__ import annotations

import pytest
import torch

from dcl_search._errors import RecipeError
from dcl_search.graphs import FORMAT, VERSION, graph_from_node_link
from dcl_search.training import CollaborativeTrainer, recipe_from_dict
from dcl_search.training._step_graph import StepGraph

WARMUP = 3


class RecordingCapture:
    """CUDA graphs' contract on the CPU: ``capture`` runs nothing, ``replay`` reruns ``fn``."""

    def __init__(self, fail_from_capture: int | None = None) -> None:
        self.fail_from_capture = fail_from_capture  # the first try that fails; None: none
        self.eager = 0
        self.tries = 0

    def run_eager(self, fn):
        self.eager += 1
        return fn()

    def capture(self, fn):
        self.tries += 1
        if self.fail_from_capture is not None and self.tries >= self.fail_from_capture:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        return fn


def _recipe(epochs: int = 3, **fields):
    return recipe_from_dict(
        {
            "epochs": epochs,
            "batch_size": 64,
            "precision": "fp32",
            # a new learning rate at each epoch: each must be captured anew
            "schedule": {"name": "multistep", "milestones": [1, 2], "gamma": 0.5},
            "augment": {"crop_padding": 1, "flip": True},
            **fields,
        }
    )


def _graphed(
    digits, gated_graph, recipe, capture: RecordingCapture, seed: int = 0
) -> CollaborativeTrainer:
    trainer = CollaborativeTrainer(gated_graph, digits, recipe, seed=seed)
    assert trainer.step_graph is None  # cuda_graph: on does nothing on the CPU by itself
    trainer.step_graph = StepGraph(trainer._step_body, trainer.num_nodes, capture, WARMUP)
    return trainer


def _assert_same_training(mine: CollaborativeTrainer, plain: CollaborativeTrainer) -> None:
    assert len(mine.history) == len(plain.history) > 0
    for a, b in zip(mine.history, plain.history, strict=True):
        assert a.lr == b.lr
        # negative_linear's 1 − k/k_end in float32 on a tensor, in float64 on a Python float
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
        assert a.val_acc == pytest.approx(b.val_acc, abs=1 / len(plain.data.val))
    for m, p in zip(mine.models, plain.models, strict=True):
        for (name, x), (_, y) in zip(m.state_dict().items(), p.state_dict().items(), strict=True):
            assert torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-5), name


def test_graphed_steps_train_as_the_eager_steps(digits, gated_graph) -> None:
    recipe = _recipe(cuda_graph="on")
    capture = RecordingCapture()
    graphed = _graphed(digits, gated_graph, recipe, capture)
    plain = CollaborativeTrainer(gated_graph, digits, _recipe(), seed=0)
    list(graphed.train_epochs())
    list(plain.train_epochs())
    _assert_same_training(graphed, plain)
    steps = graphed.total_steps
    assert graphed.step == plain.step == steps == 60
    # three learning rates (0.1, 0.05, 0.025): one capture each, every other step a replay
    assert [m.lr for m in graphed.history] == [0.1, 0.05, 0.025]
    assert graphed.step_graph.captures == 3
    assert capture.eager == WARMUP and graphed.step_graph.replays == steps - WARMUP


def test_a_replay_reads_the_batch_labels_and_progress_it_is_given(digits, gated_graph) -> None:
    """Two steps replayed on different batches and k differ as two eager steps do."""
    graphed = _graphed(digits, gated_graph, _recipe(cuda_graph="on"), RecordingCapture())
    plain = CollaborativeTrainer(gated_graph, digits, _recipe(), seed=0)
    for trainer in (graphed, plain):
        trainer.step = 5
    mine, theirs = [], []
    for step in range(WARMUP + 3):
        batch = slice(64 * step, 64 * (step + 1))
        x = plain.normalize(digits.train.images[batch], plain.channels_last)
        y = digits.train.labels[batch]
        mine.append(graphed.train_step(x, y))
        theirs.append(plain.train_step(x, y))
    # compared after all steps: a replay must not overwrite the losses it returned before
    for step, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert torch.allclose(a, b, rtol=1e-5), step
    assert len({tuple(a.tolist()) for a in mine}) == len(mine)
    assert graphed.step_graph.replays == 3 and graphed.step == plain.step == 5 + WARMUP + 3


def test_a_loaded_checkpoint_is_captured_anew(digits, gated_graph, tmp_path) -> None:
    """Loading replaces the optimizer's momentum buffers, which a graph would still update."""
    # one learning rate throughout: only the load can ask for a new capture
    constant = {"schedule": {"name": "constant", "milestones": []}}
    recipe = _recipe(2, cuda_graph="on", **constant)
    first = _graphed(digits, gated_graph, recipe, RecordingCapture())
    list(first.train_epochs(until=1))
    first.save_checkpoint(tmp_path / "checkpoint.pt")

    resumed = _graphed(digits, gated_graph, recipe, RecordingCapture())
    list(resumed.train_epochs(until=1))
    captured = resumed.step_graph.captures
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    list(resumed.train_epochs())
    assert resumed.step_graph.captures == captured + 1

    plain = CollaborativeTrainer(gated_graph, digits, _recipe(2, **constant), seed=0)
    list(plain.train_epochs())
    _assert_same_training(resumed, plain)


def test_a_step_that_cannot_be_captured_trains_on_eagerly(digits, gated_graph) -> None:
    graphed = _graphed(
        digits, gated_graph, _recipe(cuda_graph="on"), RecordingCapture(fail_from_capture=1)
    )
    plain = CollaborativeTrainer(gated_graph, digits, _recipe(), seed=0)
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph") as caught:
        list(graphed.train_epochs())
    assert len(caught) == 1 and "operation not permitted" in str(caught[0].message)
    list(plain.train_epochs())
    assert graphed.step_graph is None
    _assert_same_training(graphed, plain)


def test_a_failed_re_capture_keeps_the_count_of_the_steps_replayed_before(
    digits, gated_graph
) -> None:
    capture = RecordingCapture(fail_from_capture=2)  # the second epoch's learning rate fails
    graphed = _graphed(digits, gated_graph, _recipe(cuda_graph="on"), capture)
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph"):
        list(graphed.train_epochs())
    assert graphed.step_graph is None and capture.tries == 2
    assert graphed.graphed_steps == graphed.total_steps // 3 - WARMUP  # the first epoch's


def test_cuda_graph_is_refused_with_compile_and_left_out_of_the_digest() -> None:
    with pytest.raises(
        RecipeError, match="cuda_graph: on cannot be combined with compile: default"
    ):
        _recipe(cuda_graph="on", compile="default")
    with pytest.raises(RecipeError, match="cuda_graph.*'off', 'on'|cuda_graph.*off, on"):
        _recipe(cuda_graph="yes")
    # graphed and eager steps compute the same: a run resumes with either
    assert _recipe(cuda_graph="on").digest() == _recipe().digest()
    assert _recipe(node_streams="on").digest() == _recipe().digest()
    assert _recipe(epochs=4).digest() != _recipe().digest()


def test_cuda_graph_and_node_streams_on_train_the_cpu_as_off(digits, gated_graph) -> None:
    on = CollaborativeTrainer(gated_graph, digits, _recipe(1, cuda_graph="on", node_streams="on"))
    off = CollaborativeTrainer(gated_graph, digits, _recipe(1))
    assert on.step_graph is None and on.node_streams is None
    list(on.train_epochs())
    list(off.train_epochs())
    assert [m.train_loss for m in on.history] == [m.train_loss for m in off.history]


def test_an_error_of_an_eager_step_is_raised_not_taken_for_a_failed_capture(
    digits, gated_graph
) -> None:
    class Broken(RecordingCapture):
        def run_eager(self, fn):
            raise RuntimeError("CUDA out of memory")

    graphed = _graphed(digits, gated_graph, _recipe(1, cuda_graph="on"), Broken())
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        list(graphed.train_epochs())
    assert graphed.step_graph is not None


@pytest.mark.parametrize(
    "node0",
    [
        {"model": "tiny_cnn", "heads": 2, "intra": ["mid", "kernel"]},
        {"model": "tiny_cnn_fc", "intra": ["out", "pull_push"]},
    ],
    ids=["heads-mid-kernel", "out-pull_push"],
)
def test_a_collaborative_node_trains_graphed_as_eagerly(digits, node0) -> None:
    """Multi-head and intra-model losses, with their layer-local backward passes, in the step."""
    graph = graph_from_node_link(
        {
            "format": FORMAT,
            "version": VERSION,
            "nodes": [{"id": 0, **node0}, {"id": 1, "model": "mlp"}],
            "edges": [
                {"source": 0, "target": 0, "gate": "through"},
                {"source": 1, "target": 1, "gate": "through"},
                {"source": 1, "target": 0, "gate": "linear"},
                {"source": 0, "target": 1, "gate": "correct"},
            ],
        }
    )
    # each built right before it trains: dropout draws from the global generator, which a
    # trainer seeds when it is built
    graphed = _graphed(digits, graph, _recipe(2, cuda_graph="on"), RecordingCapture())
    list(graphed.train_epochs())
    plain = CollaborativeTrainer(graph, digits, _recipe(2), seed=0)
    list(plain.train_epochs())
    _assert_same_training(graphed, plain)
    assert graphed.step_graph.captures == 2

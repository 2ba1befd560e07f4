"""CollaborativeTrainer: reproducibility, resume, checkpoints, frozen nodes, gradients, metrics."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch import nn

from dcl_search._errors import GraphError, TrainingError
from dcl_search.graphs import preset_graph, validate_graph
from dcl_search.models import MODELS, register_model
from dcl_search.training import (
    CollaborativeTrainer,
    LabelNoise,
    Recipe,
    recipe_from_dict,
    resolve_frozen_checkpoints,
    train_run,
)
from dcl_search.training import _trainer as trainer_module


def _recipe(
    epochs: int = 2, *, batch_size: int = 64, flip: bool = False, precision: str = "fp32"
) -> Recipe:
    return recipe_from_dict(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "schedule": {"name": "cosine", "milestones": []},
            "precision": precision,
            "augment": {"crop_padding": 1, "flip": flip},
        }
    )


def _weights(trainer: CollaborativeTrainer) -> list[dict[str, torch.Tensor]]:
    return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in trainer.models]


def _same_weights(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def _history(trainer: CollaborativeTrainer) -> list[tuple]:
    """Every metric but the wall time, which differs between runs."""
    return [(m.epoch, m.val_acc, m.val_acc_ensemble, m.train_loss, m.lr) for m in trainer.history]


def _train(trainer: CollaborativeTrainer, until: int | None = None) -> list:
    return list(trainer.train_epochs(until))


@pytest.fixture(scope="module")
def teacher_weights(digits, tmp_path_factory) -> dict[str, Path]:
    """weights/node0.pt of a briefly trained independent run, per teacher model."""
    paths = {}
    for model in ("mlp", "tiny_cnn"):
        trainer = CollaborativeTrainer(preset_graph(f"independent:{model}"), digits, _recipe(1))
        _train(trainer)
        out = tmp_path_factory.mktemp(f"teacher-{model}")
        paths[model] = trainer.save_weights(out)[0]
    return paths


def _kd(student: str, teacher: str, checkpoint: Path | str) -> nx.DiGraph:
    graph = preset_graph(f"kd:{student},{teacher}")
    graph.nodes[1]["checkpoint"] = str(checkpoint)
    return graph


# -- reproducibility and resume ------------------------------------------------------------


def test_same_seed_same_metrics_and_weights_other_seed_differs(digits) -> None:
    graph, recipe = preset_graph("dml:2:tiny_cnn"), _recipe(2, flip=True)
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        trainer = CollaborativeTrainer(graph, digits, recipe, seed=seed)
        _train(trainer)
        runs[name] = (_history(trainer), _weights(trainer))
    assert len(runs["a"][0]) == 2
    assert runs["a"][0] == runs["b"][0]
    assert _same_weights(runs["a"][1], runs["b"][1])
    assert not _same_weights(runs["a"][1], runs["c"][1])
    assert [h[3] for h in runs["a"][0]] != [h[3] for h in runs["c"][0]]  # training losses


@pytest.mark.parametrize(
    ("spec", "noise", "precision"),
    [
        ("dml:2:tiny_cnn", None, "fp32"),
        ("dml:2:tiny_cnn", None, "bf16"),  # auto's choice on CUDA and AMX CPUs
        ("dml:2:mlp", LabelNoise(0.3, "epoch"), "fp32"),
        ("dml:2:mlp", LabelNoise(0.3, "fixed"), "fp32"),
    ],
    ids=["tiny_cnn-clean", "tiny_cnn-bf16", "mlp-epoch-noise", "mlp-fixed-noise"],
)
def test_resume_from_checkpoint_equals_uninterrupted(
    digits, tmp_path, spec, noise, precision
) -> None:
    graph, recipe = preset_graph(spec), _recipe(3, flip=True, precision=precision)
    straight = CollaborativeTrainer(graph, digits, recipe, seed=5, label_noise=noise)
    _train(straight)

    first = CollaborativeTrainer(graph, digits, recipe, seed=5, label_noise=noise)
    assert [m.epoch for m in first.train_epochs(until=1)] == [1]
    path = first.save_checkpoint(tmp_path / "checkpoint.pt")
    assert path == tmp_path / "checkpoint.pt" and path.is_file()

    resumed = CollaborativeTrainer(graph, digits, recipe, seed=5, label_noise=noise)
    resumed.load_checkpoint(path)
    assert (resumed.epoch, resumed.step) == (1, first.steps_per_epoch)
    assert [m.epoch for m in resumed.train_epochs()] == [2, 3]

    assert _history(resumed) == _history(straight)
    assert _same_weights(_weights(resumed), _weights(straight))
    assert resumed.step == straight.step == straight.total_steps
    momentum = [s["momentum_buffer"] for s in resumed.optimizer.state.values()]
    expected = [s["momentum_buffer"] for s in straight.optimizer.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, expected, strict=True))


# -- checkpoints that must be refused --------------------------------------------------------


@pytest.fixture(scope="module")
def mlp_checkpoint(digits, tmp_path_factory) -> Path:
    """A checkpoint after 1 of 2 epochs of independent:mlp, seed 0, no label noise."""
    trainer = CollaborativeTrainer(preset_graph("independent:mlp"), digits, _recipe(2))
    _train(trainer, until=1)
    return trainer.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt")


@pytest.mark.parametrize(
    ("spec", "kwargs", "epochs", "differs"),
    [
        ("independent:mlp", {"seed": 1}, 2, ["seed"]),
        ("independent:mlp", {}, 3, ["recipe"]),
        ("independent:tiny_cnn", {}, 2, ["graph_hash", "graph"]),
        ("dml:2:mlp", {}, 2, ["graph_hash", "graph", "gates"]),
        ("independent:mlp", {"label_noise": LabelNoise(0.2)}, 2, ["label_noise"]),
    ],
    ids=["seed", "recipe", "model", "gates", "label-noise"],
)
def test_checkpoint_of_another_run_is_refused(
    digits, mlp_checkpoint, spec, kwargs, epochs, differs
) -> None:
    trainer = CollaborativeTrainer(preset_graph(spec), digits, _recipe(epochs), **kwargs)
    before = _weights(trainer)
    with pytest.raises(TrainingError, match="another run") as error:
        trainer.load_checkpoint(mlp_checkpoint)
    message = str(error.value)
    assert message.startswith(f"{mlp_checkpoint} belongs to another run")
    assert message.split("(these settings differ: ")[1].split(")")[0].split(", ") == differs
    assert trainer.epoch == 0 and trainer.history == []
    assert _same_weights(_weights(trainer), before)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_unreadable_checkpoint_is_refused_naming_the_file(
    digits, mlp_checkpoint, tmp_path, kind
) -> None:
    content = {
        "truncated": mlp_checkpoint.read_bytes()[: mlp_checkpoint.stat().st_size // 2],
        "garbage": b"this is not a checkpoint\n" * 40,
        "empty": b"",
    }[kind]
    bad = tmp_path / f"{kind}.pt"
    bad.write_bytes(content)
    trainer = CollaborativeTrainer(preset_graph("independent:mlp"), digits, _recipe(2))
    with pytest.raises(TrainingError, match="cannot read the checkpoint") as error:
        trainer.load_checkpoint(bad)
    assert str(bad) in str(error.value)
    assert trainer.epoch == 0


def test_weights_file_is_not_a_checkpoint(digits, teacher_weights) -> None:
    trainer = CollaborativeTrainer(preset_graph("independent:mlp"), digits, _recipe(2))
    with pytest.raises(TrainingError, match="not a dcl-search checkpoint") as error:
        trainer.load_checkpoint(teacher_weights["mlp"])
    assert str(teacher_weights["mlp"]) in str(error.value)


@pytest.mark.parametrize(
    "content",
    [[1, 2, 3], {"format": "dcl-search-checkpoint", "version": 1}],
    ids=["list", "no-identity"],
)
def test_foreign_pickle_checkpoint_is_a_training_error(digits, tmp_path, content) -> None:
    bad = tmp_path / "foreign.pt"
    torch.save(content, bad)
    trainer = CollaborativeTrainer(preset_graph("independent:mlp"), digits, _recipe(2))
    with pytest.raises(TrainingError) as error:
        trainer.load_checkpoint(bad)
    assert str(bad) in str(error.value)


# -- frozen nodes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("student", "teacher"), [("tiny_cnn", "mlp"), ("mlp", "tiny_cnn")])
def test_frozen_teacher_is_never_updated(digits, teacher_weights, student, teacher) -> None:
    graph = _kd(student, teacher, teacher_weights[teacher])
    trainer = CollaborativeTrainer(graph, digits, _recipe(2))
    saved = torch.load(teacher_weights[teacher], weights_only=True)
    loaded = trainer.models[1].state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    student_before = _weights(trainer)[0]
    grad_enabled: list[bool] = []
    trainer.models[1].register_forward_pre_hook(
        lambda module, args: grad_enabled.append(torch.is_grad_enabled())
    )

    _train(trainer)
    assert len(grad_enabled) >= 2 * trainer.steps_per_epoch
    assert not any(grad_enabled)  # the teacher runs under no_grad

    after = trainer.models[1].state_dict()
    assert after.keys() == saved.keys()
    assert all(torch.equal(saved[k], after[k]) for k in saved)  # BN buffers included
    if teacher == "tiny_cnn":
        assert any("running_mean" in k for k in saved)
        assert int(after["body.1.num_batches_tracked"]) == int(saved["body.1.num_batches_tracked"])
    assert not trainer.models[1].training
    assert trainer.models[0].training
    assert all(not p.requires_grad for p in trainer.models[1].parameters())
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in trainer.models[1].parameters()}
    assert optimized == {id(p) for p in trainer.models[0].parameters()}
    assert not _same_weights([_weights(trainer)[0]], [student_before])
    assert all(m.train_loss[1] == 0.0 for m in trainer.history)  # nothing teaches the teacher
    assert all(m.train_loss[0] > 0.0 for m in trainer.history)


def test_frozen_checkpoint_of_another_model_is_refused(digits, teacher_weights) -> None:
    wrong = teacher_weights["tiny_cnn"]
    with pytest.raises(TrainingError) as error:
        CollaborativeTrainer(_kd("tiny_cnn", "mlp", wrong), digits, _recipe(1))
    message = str(error.value)
    assert message.startswith("node 1:")
    assert str(wrong) in message and "cannot load" in message


def test_frozen_node_without_usable_checkpoint_is_refused(digits, tmp_path) -> None:
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(TrainingError, match=r"node 1: checkpoint .* does not exist") as error:
        CollaborativeTrainer(_kd("mlp", "mlp", missing), digits, _recipe(1))
    assert str(missing) in str(error.value)
    with pytest.raises(TrainingError, match="node 1 is frozen but has no checkpoint"):
        CollaborativeTrainer(preset_graph("kd:mlp,mlp"), digits, _recipe(1))


# -- resolve_frozen_checkpoints -----------------------------------------------------------------


def test_frozen_teacher_is_pretrained_once_and_cached(digits, tmp_path) -> None:
    graph, recipe, cache = preset_graph("kd:tiny_cnn,mlp"), _recipe(1), tmp_path / "cache"
    messages: list[str] = []
    resolved = resolve_frozen_checkpoints(
        graph, digits, recipe, cache_dir=cache, log=messages.append
    )

    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    path = Path(resolved.nodes[1]["checkpoint"])
    assert path.is_absolute() and path == files[0].resolve()
    assert "checkpoint" not in graph.nodes[1]  # the input graph is left alone
    assert "checkpoint" not in resolved.nodes[0]
    assert len(messages) == 1 and "node 1" in messages[0] and "mlp" in messages[0]

    # The cached teacher is exactly an independent run of its model with the same recipe.
    reference = CollaborativeTrainer(preset_graph("independent:mlp"), digits, recipe, seed=0)
    _train(reference)
    cached = torch.load(path, weights_only=True)
    expected = reference.models[0].state_dict()
    assert cached.keys() == expected.keys()
    assert all(torch.equal(cached[k], expected[k]) for k in expected)

    mtime = path.stat().st_mtime_ns
    again = resolve_frozen_checkpoints(graph, digits, recipe, cache_dir=cache, log=messages.append)
    assert len(messages) == 1
    assert again.nodes[1]["checkpoint"] == str(path)
    assert path.stat().st_mtime_ns == mtime
    assert list(cache.iterdir()) == files

    student = CollaborativeTrainer(again, digits, recipe)
    assert all(torch.equal(cached[k], v) for k, v in student.models[1].state_dict().items())


def test_relative_frozen_checkpoint_is_read_from_the_graph_dir(
    digits, teacher_weights, tmp_path
) -> None:
    graph_dir = tmp_path / "graphs"
    (graph_dir / "teachers").mkdir(parents=True)
    target = graph_dir / "teachers" / "mlp.pt"
    target.write_bytes(teacher_weights["mlp"].read_bytes())
    graph = _kd("tiny_cnn", "mlp", "teachers/mlp.pt")

    def no_log(message: str) -> None:
        raise AssertionError(f"nothing should be pre-trained: {message}")

    resolved = resolve_frozen_checkpoints(
        graph, digits, _recipe(1), cache_dir=tmp_path / "cache", graph_dir=graph_dir, log=no_log
    )
    assert resolved.nodes[1]["checkpoint"] == str(target.resolve())
    assert graph.nodes[1]["checkpoint"] == "teachers/mlp.pt"
    assert not (tmp_path / "cache").exists()

    missing = _kd("tiny_cnn", "mlp", "teachers/absent.pt")
    with pytest.raises(GraphError, match="node 1") as error:
        resolve_frozen_checkpoints(
            missing, digits, _recipe(1), cache_dir=tmp_path / "cache", graph_dir=graph_dir
        )
    assert str(graph_dir / "teachers" / "absent.pt") in str(error.value)


# -- non-finite losses -----------------------------------------------------------------------


class _NaNLogits(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))  # something for the optimizer to hold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.num_classes), math.nan) * self.scale


@pytest.fixture
def nan_model():
    name = "test_training_nan_logits"
    register_model(name)(lambda num_classes, in_channels=3: _NaNLogits(num_classes))
    try:
        yield name
    finally:
        MODELS._entries.pop(name, None)


def test_non_finite_loss_stops_the_run_naming_node_model_and_epoch(digits, nan_model) -> None:
    graph = nx.DiGraph()
    graph.add_node(0, model="mlp", frozen=False)
    graph.add_node(1, model=nan_model, frozen=False)
    graph.add_edge(0, 0, gate="through")
    graph.add_edge(1, 1, gate="through")
    trainer = CollaborativeTrainer(validate_graph(graph), digits, _recipe(2))
    seen = []
    with pytest.raises(TrainingError) as error:
        for metrics in trainer.train_epochs():
            seen.append(metrics)
    message = str(error.value)
    assert message.startswith(f"node 1 ({nan_model})")
    assert "non-finite" in message and "epoch 1" in message
    assert seen == [] and trainer.history == [] and trainer.epoch == 0


# -- steps, k / k_end -----------------------------------------------------------------------------


def test_linear_gate_progress_runs_over_the_whole_run(digits) -> None:
    recipe = _recipe(3)
    trainer = CollaborativeTrainer(preset_graph("dml:2:mlp"), digits, recipe)
    spe = len(digits.train) // recipe.batch_size
    assert trainer.steps_per_epoch == spe == 20
    assert trainer.total_steps == spe * 3

    progress: list[float] = []
    loss = trainer.loss

    def recording(logits, labels, k):
        progress.append(float(k))
        return loss(logits, labels, k)

    trainer.loss = recording
    _train(trainer, until=1)  # an ASHA rung: k_end still counts the full run
    assert trainer.step == spe
    _train(trainer, until=2)
    assert trainer.step == 2 * spe
    assert progress == [k / (3 * spe) for k in range(2 * spe)]

    longer = CollaborativeTrainer(preset_graph("dml:2:mlp"), digits, recipe.with_epochs(5))
    assert longer.recipe.epochs == 5 and longer.total_steps == 5 * spe
    shorter = CollaborativeTrainer(preset_graph("dml:2:mlp"), digits, recipe.with_epochs(1))
    assert [m.epoch for m in shorter.train_epochs(until=4)] == [1]  # capped at the recipe
    assert shorter.step == shorter.total_steps == spe
    assert recipe.with_epochs(None) is recipe


# -- gradients -------------------------------------------------------------------------------------


def test_each_node_gets_only_its_own_gradient(digits) -> None:
    trainer = CollaborativeTrainer(preset_graph("dml:2:mlp"), digits, _recipe(1))
    x = trainer.normalize(digits.train.images[:64])
    y = digits.train.labels[:64]
    losses = trainer.loss(trainer._forward_all(x, y)[0], y, 0.0)
    params = [list(m.parameters()) for m in trainer.models]
    for t in range(2):
        own = torch.autograd.grad(losses[t], params[t], retain_graph=True, allow_unused=True)
        other = torch.autograd.grad(losses[t], params[1 - t], retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in own)
        assert all(g is None or not g.any() for g in other)


# -- evaluation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluate_matches_a_hand_computation(digits, teacher_weights, split) -> None:
    trainer = CollaborativeTrainer(
        _kd("tiny_cnn", "mlp", teacher_weights["mlp"]), digits, _recipe(1)
    )
    _train(trainer)
    accuracy = trainer.evaluate(split)
    assert trainer.models[0].training and not trainer.models[1].training

    subset = getattr(digits, split)
    mean = torch.tensor(digits.mean).view(1, -1, 1, 1)
    std = torch.tensor(digits.std).view(1, -1, 1, 1)
    x = (subset.images.float() / 255.0 - mean) / std
    with torch.no_grad():
        for model in trainer.models:
            model.eval()
        logits = [model(x) for model in trainer.models]
    expected = [(z.argmax(1) == subset.labels).double().mean().item() for z in logits]
    ensemble = torch.stack([z.softmax(1) for z in logits]).mean(0)
    expected_ensemble = (ensemble.argmax(1) == subset.labels).double().mean().item()

    assert len(accuracy.nodes) == 2
    assert all(0.0 <= a <= 1.0 for a in (*accuracy.nodes, accuracy.ensemble))
    assert accuracy.nodes == pytest.approx(expected, abs=1e-12)
    assert accuracy.ensemble == pytest.approx(expected_ensemble, abs=1e-12)
    assert accuracy.nodes[1] > 0.5  # the loaded teacher, not a fresh one


class _FixedLogits(nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def test_ensemble_averages_probabilities_not_logits(digits) -> None:
    trainer = CollaborativeTrainer(preset_graph("dml:2:mlp"), digits, _recipe(1))
    # mean of logits picks class 1 (0.5 > -7.5); mean of softmax picks class 0 (0.47 > 0.13)
    trainer.models = [
        _FixedLogits([5.0] + [0.0] * 9),
        _FixedLogits([-20.0, 1.0] + [0.0] * 8),
    ]
    labels = digits.val.labels
    share = [(labels == c).double().mean().item() for c in (0, 1)]
    assert share[0] != share[1]
    accuracy = trainer.evaluate("val")
    assert accuracy.nodes == pytest.approx(share, abs=1e-12)
    assert accuracy.ensemble == pytest.approx(share[0], abs=1e-12)


def test_evaluate_in_small_batches_equals_one_batch(digits) -> None:
    one = CollaborativeTrainer(preset_graph("dml:2:tiny_cnn"), digits, _recipe(1))
    small = recipe_from_dict({**_recipe(1).to_dict(), "eval_batch_size": 10})
    many = CollaborativeTrainer(preset_graph("dml:2:tiny_cnn"), digits, small)
    _train(one)
    _train(many)
    assert many.evaluate("val") == one.evaluate("val")
    assert many.history[0].val_acc == one.history[0].val_acc


# -- label noise -----------------------------------------------------------------------------------


def _noisy_run(digits, noise: LabelNoise | None, epochs: int = 3):
    """Labels each epoch trained on, and the labels its steps saw (all samples: 5 x 259)."""
    recipe = _recipe(epochs, batch_size=259)
    trainer = CollaborativeTrainer(
        preset_graph("independent:mlp"), digits, recipe, label_noise=noise
    )
    assert trainer.steps_per_epoch * recipe.batch_size == len(digits.train)
    epoch_labels: list[torch.Tensor] = []
    step_labels: list[torch.Tensor] = []
    labels_of, step = trainer._epoch_labels, trainer.train_step

    def record_labels():
        epoch_labels.append(labels_of().clone())
        return epoch_labels[-1]

    def record_step(x, y):
        step_labels.append(y.clone())
        return step(x, y)

    trainer._epoch_labels, trainer.train_step = record_labels, record_step
    _train(trainer)
    per_epoch = [torch.cat(step_labels[i * 5 : (i + 1) * 5]) for i in range(epochs)]
    return epoch_labels, per_epoch


def _wrong(labels: torch.Tensor, clean: torch.Tensor) -> float:
    return (labels != clean).double().mean().item()


def test_fixed_label_noise_is_the_same_every_epoch(digits) -> None:
    clean = digits.train.labels
    labels, seen = _noisy_run(digits, LabelNoise(0.5, "fixed"))
    assert len(labels) == 3
    assert all(torch.equal(labels[0], other) for other in labels[1:])
    assert 0.40 < _wrong(labels[0], clean) < 0.50  # 0.5 · (1 − 1/10) = 0.45 expected
    for used in seen:  # the steps trained on the noisy labels (same class counts)
        assert torch.equal(
            torch.bincount(used, minlength=10), torch.bincount(labels[0], minlength=10)
        )
    assert not torch.equal(
        torch.bincount(labels[0], minlength=10), torch.bincount(clean, minlength=10)
    )


def test_epoch_label_noise_is_drawn_anew_every_epoch(digits) -> None:
    clean = digits.train.labels
    labels, _ = _noisy_run(digits, LabelNoise(0.5, "epoch"))
    assert all(0.40 < _wrong(each, clean) < 0.50 for each in labels)
    assert not torch.equal(labels[0], labels[1]) and not torch.equal(labels[1], labels[2])
    assert _wrong(labels[0], labels[1]) > 0.3


@pytest.mark.parametrize("noise", [None, LabelNoise(0.0, "epoch"), LabelNoise(0.0, "fixed")])
def test_zero_label_noise_trains_on_clean_labels(digits, noise) -> None:
    labels, seen = _noisy_run(digits, noise, epochs=1)
    assert torch.equal(labels[0], digits.train.labels)
    assert torch.equal(torch.sort(seen[0]).values, torch.sort(digits.train.labels).values)


def test_label_noise_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"fraction is 1\.5"):
        LabelNoise(1.5)
    with pytest.raises(ValueError, match="fraction"):
        LabelNoise(-0.1)
    with pytest.raises(ValueError, match="allowed values: epoch, fixed"):
        LabelNoise(0.1, "batch")


def test_trainer_refuses_a_batch_larger_than_the_training_split(digits) -> None:
    with pytest.raises(TrainingError, match=f"{len(digits.train)} images"):
        CollaborativeTrainer(preset_graph("independent:mlp"), digits, _recipe(1, batch_size=5000))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_paths_compute_the_plain_losses_and_gradients(digits, precision: str) -> None:
    """channels_last (and bf16 autocast) change only the speed, within rounding."""
    recipes = {
        layout: recipe_from_dict({"epochs": 2, "channels_last": layout, "precision": p})
        for layout, p in (("off", "fp32"), ("on", precision))
    }
    graph = preset_graph("dml:2:tiny_cnn")
    trainers = {k: CollaborativeTrainer(graph, digits, r, seed=3) for k, r in recipes.items()}
    x = trainers["off"].normalize(digits.train.images[:64], False)
    y = digits.train.labels[:64]
    results = {}
    for layout, trainer in trainers.items():
        inputs = trainer.normalize(digits.train.images[:64], trainer.channels_last)
        losses = trainer.loss(trainer._forward_all(inputs, y)[0], y, 0.5)
        losses.sum().backward()
        results[layout] = (
            losses.detach(),
            [p.grad.clone() for m in trainer.models for p in m.parameters()],
        )
    assert trainers["on"].channels_last and not trainers["off"].channels_last
    assert x.is_contiguous()
    tolerance = 1e-4 if precision == "fp32" else 5e-2
    assert torch.allclose(results["on"][0], results["off"][0], rtol=tolerance, atol=tolerance)
    for fast, plain in zip(results["on"][1], results["off"][1], strict=True):
        assert torch.allclose(
            fast, plain, rtol=tolerance, atol=tolerance * max(1.0, plain.abs().max().item())
        )


def test_the_bf16_probe_says_what_the_cpu_flags_say() -> None:
    """``precision: auto`` trusts the probe, so it must agree with the kernel's view of the CPU."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("needs Linux's /proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines()
    flags = next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
    assert trainer_module.cpu_has_bf16_matrix_units() == ("amx_tile" in flags)


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_on_cpus_with_bf16_matrix_units(
    digits, tmp_path, monkeypatch, amx: bool
) -> None:
    monkeypatch.setattr(trainer_module, "cpu_has_bf16_matrix_units", lambda: amx)
    graph = preset_graph("independent:mlp")

    def recipe(precision: str) -> Recipe:
        return recipe_from_dict({"epochs": 1, "batch_size": 64, "precision": precision})

    def autocast(precision: str) -> torch.dtype | None:
        return CollaborativeTrainer(graph, digits, recipe(precision)).autocast_dtype

    assert autocast("auto") is (torch.bfloat16 if amx else None)
    assert autocast("fp32") is None and autocast("bf16") is torch.bfloat16
    # the run's summary says what auto became on this machine
    summary = train_run(graph, digits, recipe("auto"), tmp_path / "run").summary
    assert summary["recipe"]["precision"] == "auto"
    assert summary["precision"] == ("bf16" if amx else "fp32")


def test_multi_tensor_sgd_updates_exactly_as_the_per_parameter_loop(
    digits, per_parameter_sgd
) -> None:
    """The CPU fast path (foreach SGD over all nodes) gives the plain optimizer's weights."""
    trainer = CollaborativeTrainer(preset_graph("dml:3:tiny_cnn"), digits, _recipe(2), seed=1)
    assert trainer.optimizer.defaults["foreach"] is True
    params = [p for m in trainer.models for p in m.parameters()]
    initial = [p.detach().clone() for p in params]
    reference, plain = per_parameter_sgd(trainer)
    x = trainer.normalize(digits.train.images[:64], trainer.channels_last)
    y = digits.train.labels[:64]
    for _ in range(3):  # momentum buffers come in from the second step
        trainer.loss(trainer._forward_all(x, y)[0], y, 0.5).sum().backward()
        for mine, theirs in zip(params, reference, strict=True):
            theirs.grad = mine.grad.clone()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        plain.step()
    assert all(torch.equal(p, r) for p, r in zip(params, reference, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(params, initial, strict=True))

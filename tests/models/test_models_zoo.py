"""Tests of the model zoo: every registered model, parameter counts, build_model's checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dcl_search._errors import RegistryError
from dcl_search.models import (
    MODELS,
    ImageClassifier,
    build_model,
    cifar_resnet,
    count_parameters,
    register_model,
    wide_resnet,
)

ALL_MODELS = MODELS.names()
DROPOUT_CLASSIFIERS = {"vgg16", "resnet18", "tiny_cnn_fc"}  # a Sequential classifier, not a Linear


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- every registered model


def test_zoo_holds_the_documented_models() -> None:
    expected = {
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
        "wrn16_2", "wrn16_4", "wrn16_8", "wrn28_2", "wrn28_10", "wrn40_2", "wrn40_4",
        "tiny_cnn", "tiny_cnn_fc", "mlp", "vgg16", "resnet18",
    }  # fmt: skip
    assert expected <= set(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize(
    ("shape", "num_classes"), [((2, 1, 8, 8), 10), ((2, 3, 32, 32), 7)], ids=["8px", "32px"]
)
def test_output_shape(name: str, shape: tuple[int, ...], num_classes: int) -> None:
    model = build_model(name, num_classes, in_channels=shape[1]).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], num_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_features_then_classifier_is_forward(name: str) -> None:
    # train mode: batch statistics keep the untrained deep nets' activations at a sane scale
    model = build_model(name, 10, in_channels=1).train()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        feats = model.features(x)
    if name in DROPOUT_CLASSIFIERS:
        # Fang & Lin's three fully-connected layers; the last one gives the logits
        assert isinstance(model.classifier, nn.Sequential)
        first, last = model.classifier[0], model.classifier[-1]
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    else:
        assert isinstance(model.classifier, nn.Linear)
        first = last = model.classifier
    assert feats.shape == (2, first.in_features) == (2, model.num_features)
    assert last.out_features == 10
    # train mode: same seed, so that the classifier's dropout draws the same masks
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(x)
        torch.manual_seed(1)
        assert torch.equal(model.classifier(model.features(x)), logits)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = build_model(name, 10, in_channels=3).train()
    loss = F.cross_entropy(model(torch.randn(2, 3, 8, 8)), torch.tensor([3, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = dict(model.named_parameters())
    assert [n for n, p in grads.items() if p.grad is None] == []
    assert [n for n, p in grads.items() if not torch.isfinite(p.grad).all()] == []
    assert sum(p.grad.abs().sum().item() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", ALL_MODELS)
def test_channels_last_matches_contiguous(name: str) -> None:
    model = build_model(name, 10, in_channels=3).train()
    # vgg16 pools 12x12 down to 1x1, where train-mode batch norm over 2 values per channel
    # amplifies rounding differences past any tolerance; 32x32 leaves it 2x2 maps
    size = 32 if name == "vgg16" else 12
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        # the same seed for both calls: vgg16 / resnet18 draw dropout masks in train mode
        torch.manual_seed(1)
        reference = model(x)
        model.to(memory_format=torch.channels_last)
        torch.manual_seed(1)
        out = model(x.contiguous(memory_format=torch.channels_last))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_bfloat16_autocast(name: str) -> None:
    model = build_model(name, 10, in_channels=1).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet20", "wrn16_2", "tiny_cnn", "mlp"])
@pytest.mark.parametrize("size", [9, 33, 64, 96])
def test_other_input_sizes(name: str, size: int) -> None:
    # odd sizes exercise the stride-2 shortcut against the stride-2 conv (both ceil(H / 2))
    model = build_model(name, 10, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


def test_init_is_kaiming_and_batch_norm_identity() -> None:
    model = build_model("resnet20", 10)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 19
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    assert all(torch.equal(bn.bias, torch.zeros_like(bn.bias)) for bn in bns)
    conv = model.stages[2][1].conv1  # 64 -> 64, 3x3: 36,864 weights
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


# ---------------------------------------------------------------- parameter counts


def _cifar_resnet_params(depth: int, num_classes: int, in_channels: int = 3) -> int:
    n = (depth - 2) // 6
    total = in_channels * 16 * 9 + 2 * 16  # stem conv + BN
    in_planes = 16
    for planes in (16, 32, 64):
        for _ in range(n):
            # two 3x3 convs and two BNs; option A shortcuts have no parameters
            total += in_planes * planes * 9 + planes * planes * 9 + 4 * planes
            in_planes = planes
    return total + 64 * num_classes + num_classes


def _wrn_params(depth: int, k: int, num_classes: int, in_channels: int = 3) -> int:
    n = (depth - 4) // 6
    total = in_channels * 16 * 9
    in_planes = 16
    for planes in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * in_planes + in_planes * planes * 9 + 2 * planes + planes * planes * 9
            if in_planes != planes:
                total += in_planes * planes  # 1x1 projection shortcut
            in_planes = planes
    return total + 2 * in_planes + in_planes * num_classes + num_classes


@pytest.mark.parametrize(
    ("name", "num_classes", "published"),
    [
        ("resnet20", 10, 0.27e6),
        ("resnet32", 10, 0.46e6),
        ("resnet32", 100, 0.47e6),
        ("resnet56", 10, 0.85e6),
        ("resnet110", 100, 1.73e6),
        ("wrn28_2", 100, 1.48e6),
        ("wrn28_10", 10, 36.5e6),
    ],
)
def test_parameter_counts_match_the_papers(name: str, num_classes: int, published: float) -> None:
    assert count_parameters(build_model(name, num_classes)) == pytest.approx(published, rel=0.02)


def test_exact_parameter_counts() -> None:
    # literals, so that a change of architecture shows even if the formulas drift with it
    assert _cifar_resnet_params(20, 10) == 269_722
    assert count_parameters(build_model("resnet20", 10)) == 269_722
    assert _wrn_params(28, 2, 100) == 1_479_220
    assert count_parameters(build_model("wrn28_2", 100)) == 1_479_220


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize(("num_classes", "in_channels"), [(10, 3), (100, 1)])
def test_resnet_counts_follow_the_formula(depth: int, num_classes: int, in_channels: int) -> None:
    model = build_model(f"resnet{depth}", num_classes, in_channels)
    assert count_parameters(model) == _cifar_resnet_params(depth, num_classes, in_channels)


@pytest.mark.parametrize(
    ("name", "depth", "k"),
    [("wrn16_2", 16, 2), ("wrn16_4", 16, 4), ("wrn28_2", 28, 2), ("wrn40_2", 40, 2)],
)
def test_wrn_counts_follow_the_formula(name: str, depth: int, k: int) -> None:
    assert count_parameters(build_model(name, 100)) == _wrn_params(depth, k, 100)


def test_tiny_models_are_tiny() -> None:
    assert 20_000 <= count_parameters(build_model("tiny_cnn", 10, in_channels=1)) <= 30_000
    assert count_parameters(build_model("mlp", 10, in_channels=1)) < 60_000


def test_count_parameters_trainable_only() -> None:
    model = build_model("tiny_cnn", 10, in_channels=1)
    total = count_parameters(model)
    model.classifier.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - (64 * 10 + 10)
    assert count_parameters(model) == total


# ---------------------------------------------------------------- build_model and the registry


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"num_classes": "10"}, "num_classes"),
        ({"num_classes": 10, "in_channels": 0}, "in_channels"),
        ({"num_classes": 10, "in_channels": 2.0}, "in_channels"),
    ],
)
def test_build_model_rejects_bad_arguments(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        build_model("tiny_cnn", **kwargs)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(RegistryError, match="unknown model 'resnet21'") as err:
        build_model("resnet21", 10)
    assert all(name in str(err.value) for name in ALL_MODELS)


@pytest.mark.parametrize(
    ("builder", "match"),
    [
        (lambda: cifar_resnet(21, 10), "depth"),
        (lambda: cifar_resnet(2, 10), "depth"),
        (lambda: wide_resnet(27, 2, 10), "depth"),
        (lambda: wide_resnet(4, 2, 10), "depth"),
        (lambda: wide_resnet(28, 0, 10), "widen_factor"),
        (lambda: wide_resnet(28, 2, 10, dropout=1.0), "dropout"),
    ],
)
def test_family_builders_reject_bad_shapes(builder, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        builder()


def test_family_builders_build_unregistered_depths() -> None:
    assert count_parameters(cifar_resnet(8, 10)) == _cifar_resnet_params(8, 10)
    assert count_parameters(wide_resnet(10, 1, 10)) == _wrn_params(10, 1, 10)
    assert count_parameters(wide_resnet(22, 3, 10, dropout=0.3)) == _wrn_params(22, 3, 10)


@pytest.fixture
def scratch_model_name():
    name = "_test_models_zoo_linear"
    assert name not in MODELS
    yield name
    MODELS._entries.pop(name, None)


def test_register_model_makes_build_model_find_it(scratch_model_name: str) -> None:
    class Linear(ImageClassifier):
        def __init__(self, num_classes: int, in_channels: int = 3) -> None:
            super().__init__()
            self.in_channels = in_channels
            self.classifier = nn.Linear(in_channels, num_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    @register_model(scratch_model_name)
    def linear(num_classes: int, in_channels: int = 3) -> nn.Module:
        return Linear(num_classes, in_channels)

    assert scratch_model_name in MODELS.names()
    model = build_model(scratch_model_name, 5, in_channels=2)
    assert isinstance(model, Linear)
    assert model.in_channels == 2
    assert model(torch.randn(4, 2, 8, 8)).shape == (4, 5)
    with pytest.raises(ValueError, match="already registered"):
        register_model(scratch_model_name)(linear)
    with pytest.raises(ValueError, match="num_classes"):
        build_model(scratch_model_name, 1)

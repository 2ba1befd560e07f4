"""Tests of ModelLayout on every registered model, and of the Fang & Lin VGG-16 / ResNet-18."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from dcl_search.models import (
    MODELS,
    ImageClassifier,
    ModelLayout,
    build_model,
    count_parameters,
)

ALL_MODELS = MODELS.names()
FANG_LIN_MODELS = ["vgg16", "resnet18"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _blocks(layout: ModelLayout) -> list[nn.Module]:
    return [block for _, blocks in layout.stages for block in blocks]


def _run(layout: ModelLayout, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The layout's composition on ``x`` and the number of dims of every block's output."""
    dims = []
    for block in _blocks(layout):
        x = block(x)
        dims.append(x.dim())
    for module in layout.head:
        x = module(x)
    return x, dims


def _build_meta(name: str, num_classes: int = 10) -> nn.Module:
    # structure only: skips the (slow, for the wide nets) weight initialisation
    with torch.device("meta"):
        return build_model(name, num_classes)


# ---------------------------------------------------------------- every registered model


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 3, 32, 32)], ids=["8px", "32px"])
def test_layout_composes_to_forward(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, 10, in_channels=shape[1])
    layout = model.layout()
    x = torch.randn(shape)
    # train mode: batch statistics and dropout; the same seed must draw the same masks
    for train in (False, True):
        model.train(train)
        with torch.no_grad():
            torch.manual_seed(1)
            reference = model(x)
            torch.manual_seed(1)
            out, dims = _run(layout, x)
        assert torch.equal(out, reference), f"train={train}"
        assert dims == [4 if layout.feature_maps else 2] * len(dims)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_layout_partitions_the_parameters(name: str) -> None:
    model = _build_meta(name)
    layout = model.layout()
    owners = [*_blocks(layout), *layout.head]
    per_owner = [{id(p) for p in owner.parameters()} for owner in owners]
    counts = Counter(pid for ids in per_owner for pid in ids)
    assert [pid for pid, n in counts.items() if n > 1] == []
    assert set(counts) == {id(p) for p in model.parameters()}
    # the layout references the model's own modules, never copies (buffers included)
    own = {id(m) for m in model.modules()}
    stateful = [
        m
        for owner in owners
        for m in owner.modules()
        if next(m.parameters(recurse=False), None) is not None
        or next(m.buffers(recurse=False), None) is not None
    ]
    assert all(id(m) in own for m in stateful)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_layout_shape(name: str) -> None:
    model = _build_meta(name)
    layout = model.layout()
    names = [stage for stage, _ in layout.stages]
    assert len(set(names)) == len(names) >= 2
    assert all(blocks for _, blocks in layout.stages)
    assert layout.head[-1] is model.classifier


@pytest.mark.parametrize(
    ("name", "stages"),
    [
        ("resnet20", {"stem": 1, "stage1": 3, "stage2": 3, "stage3": 3}),
        ("resnet56", {"stem": 1, "stage1": 9, "stage2": 9, "stage3": 9}),
        ("wrn28_2", {"stem": 1, "group1": 4, "group2": 4, "group3": 4}),
        ("tiny_cnn", {"layer1": 1, "layer2": 1, "layer3": 1}),
        ("mlp", {"hidden1": 1, "hidden2": 1}),
        ("vgg16", {"block1": 2, "block2": 2, "block3": 3, "block4": 3, "block5": 3}),
        ("resnet18", {"stem": 1, "stage1": 2, "stage2": 2, "stage3": 2, "stage4": 2}),
    ],
)
def test_stage_names_and_sizes(name: str, stages: dict[str, int]) -> None:
    layout = _build_meta(name).layout()
    assert {stage: len(blocks) for stage, blocks in layout.stages} == stages
    assert list(dict(layout.stages)) == list(stages)  # in order
    assert layout.feature_maps is (name != "mlp")


def test_wide_resnet_head_normalises_before_pooling() -> None:
    model = _build_meta("wrn16_2")
    head = model.layout().head
    assert head[:3] == [model.bn, model.relu, model.pool]
    assert isinstance(head[3], nn.Flatten)


def test_base_layout_is_not_implemented() -> None:
    class Bare(ImageClassifier):
        pass

    with pytest.raises(NotImplementedError, match=r"Bare must implement layout\(\)"):
        Bare().layout()


# ---------------------------------------------------------------- Fang & Lin's VGG-16 and ResNet-18


def _conv(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout  # no bias: batch norm follows every conv


def _bn(c: int) -> int:
    return 2 * c  # weight and bias


def _linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def _dropout_classifier(num_classes: int) -> int:
    return _linear(512, 512) + _linear(512, 512) + _linear(512, num_classes)


def _vgg16_params(num_classes: int, in_channels: int = 3) -> int:
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, cin = 0, in_channels
    for cout in widths:
        total += _conv(cin, cout) + _bn(cout)
        cin = cout
    return total + _dropout_classifier(num_classes)


def _resnet18_params(num_classes: int, in_channels: int = 3) -> int:
    total = _conv(in_channels, 64) + _bn(64)  # stem
    cin = 64
    for planes in (64, 128, 256, 512):
        for _ in range(2):
            total += _conv(cin, planes) + _bn(planes) + _conv(planes, planes) + _bn(planes)
            if cin != planes:
                total += _conv(cin, planes, k=1) + _bn(planes)  # projection shortcut
            cin = planes
    return total + _dropout_classifier(num_classes)


def test_fang_lin_exact_parameter_counts() -> None:
    # literals, so that a change of architecture shows even if the formulas drift with it
    # VGG-16: convs 14,710,464 + BN 8,448 + FC 525,312 + 512*C + C
    assert _vgg16_params(10) == 15_249_354
    assert _vgg16_params(100) == 15_295_524
    # ResNet-18: backbone 11,168,832 + FC 525,312 + 512*C + C
    assert _resnet18_params(10) == 11_699_274
    assert _resnet18_params(100) == 11_745_444


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("in_channels", [3, 1])
def test_fang_lin_counts_follow_the_formula(num_classes: int, in_channels: int) -> None:
    with torch.device("meta"):
        vgg = build_model("vgg16", num_classes, in_channels)
        resnet = build_model("resnet18", num_classes, in_channels)
    assert count_parameters(vgg) == _vgg16_params(num_classes, in_channels)
    assert count_parameters(resnet) == _resnet18_params(num_classes, in_channels)


@pytest.mark.parametrize("name", FANG_LIN_MODELS)
def test_fang_lin_classifier(name: str) -> None:
    model = _build_meta(name, 100)
    assert model.num_features == 512
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    dropouts = [m for m in model.classifier if isinstance(m, nn.Dropout)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512, 512),
        (512, 512),
        (512, 100),
    ]
    assert [m.p for m in dropouts] == [0.5, 0.5]
    assert isinstance(model.classifier[-1], nn.Linear)


def test_vgg16_stages_end_in_a_ceil_mode_max_pool() -> None:
    layout = _build_meta("vgg16").layout()
    for _, blocks in layout.stages:
        pools = [[m for m in b.modules() if isinstance(m, nn.MaxPool2d)] for b in blocks]
        assert [len(p) for p in pools] == [0] * (len(blocks) - 1) + [1]
        assert pools[-1][0].ceil_mode


@pytest.mark.parametrize("name", FANG_LIN_MODELS)
@pytest.mark.parametrize("size", [8, 32, 96])
def test_fang_lin_output_shape(name: str, size: int) -> None:
    model = build_model(name, 7, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()

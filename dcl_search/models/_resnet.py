"""CIFAR ResNets of He et al. 2016, "Deep Residual Learning for Image Recognition", Sec. 4.2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcl_search.models._base import (
    ImageClassifier,
    ModelLayout,
    conv3x3,
    init_weights,
    register_model,
)


class _ShortcutA(nn.Module):
    """The paper's option A: identity, subsampled and zero-padded when the shape changes.

    Parameter-free, which is what makes the parameter counts match Table 6 of the paper.
    """

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            # ceil(H / stride) rows, like the padded 3x3 stride-2 conv of the residual branch
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


def _shortcut_b(in_planes: int, planes: int, stride: int) -> nn.Module:
    """The paper's option B: a 1x1 projection (and batch norm) when the shape changes."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut, option ``"A"`` (parameter-free, the CIFAR
    ResNets of Sec. 4.2) or ``"B"`` (projection, ResNet-18) when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        projection = {"A": _ShortcutA, "B": _shortcut_b}[shortcut]
        self.shortcut: nn.Module = (
            projection(in_planes, planes, stride)
            if stride != 1 or in_planes != planes
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(ImageClassifier):
    """ResNet-(6n+2) for small images (He et al. 2016, Sec. 4.2).

    A 3x3 stem of 16 channels, then three stages of ``n`` basic blocks with 16, 32, 64
    channels (the last two start with stride 2), global average pooling and a linear layer.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, ...), got {depth!r}.")
        n = (depth - 2) // 6
        self.depth = depth
        self.stem = nn.Sequential(
            conv3x3(in_channels, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True)
        )
        stages: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def layout(self) -> ModelLayout:
        stages = [(f"stage{i}", list(stage)) for i, stage in enumerate(self.stages, 1)]
        return ModelLayout(
            stages=[("stem", [self.stem]), *stages],
            head=[self.pool, nn.Flatten(), self.classifier],
        )


def cifar_resnet(depth: int, num_classes: int, in_channels: int = 3) -> CifarResNet:
    """Shared builder of the CIFAR ResNet family; ValueError unless ``depth`` is 6n+2."""
    return CifarResNet(depth, num_classes, in_channels)


@register_model("resnet20")
def resnet20(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 (He et al. 2016): 0.27 M parameters for 10 classes."""
    return cifar_resnet(20, num_classes, in_channels)


@register_model("resnet32")
def resnet32(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-32 (He et al. 2016): 0.46 M parameters for 10 classes."""
    return cifar_resnet(32, num_classes, in_channels)


@register_model("resnet44")
def resnet44(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-44 (He et al. 2016): 0.66 M parameters for 10 classes."""
    return cifar_resnet(44, num_classes, in_channels)


@register_model("resnet56")
def resnet56(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-56 (He et al. 2016): 0.85 M parameters for 10 classes."""
    return cifar_resnet(56, num_classes, in_channels)


@register_model("resnet110")
def resnet110(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """ResNet-110 (He et al. 2016): 1.7 M parameters for 10 classes."""
    return cifar_resnet(110, num_classes, in_channels)

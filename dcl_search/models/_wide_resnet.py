"""Wide ResNets of Zagoruyko & Komodakis 2016, "Wide Residual Networks" (BMVC 2016)."""

from __future__ import annotations

import torch
from torch import nn

from dcl_search.models._base import (
    ImageClassifier,
    ModelLayout,
    conv3x3,
    init_weights,
    register_model,
)


class _PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, the paper's B(3,3) block."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu(self.bn1(x))
        # the projection sees the pre-activated input, as in the authors' reference code
        shortcut = x if self.shortcut is None else self.shortcut(o)
        out = self.conv1(o)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(ImageClassifier):
    """WRN-d-k (Zagoruyko & Komodakis 2016).

    A 3x3 stem of 16 channels, three groups of ``(d - 4) / 6`` pre-activation blocks with
    16k, 32k, 64k channels (the last two start with stride 2), a final BN-ReLU, global
    average pooling and a linear layer.
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n+4 with n >= 1 (10, 16, 22, 28), got {depth!r}.")
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be an integer >= 1, got {widen_factor!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        n = (depth - 4) // 6
        self.depth, self.widen_factor = depth, widen_factor
        self.stem = conv3x3(in_channels, 16)
        groups: list[nn.Module] = []
        in_planes = 16
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        for planes, stride in zip(widths, (1, 2, 2), strict=True):
            blocks = []
            for i in range(n):
                blocks.append(_PreActBlock(in_planes, planes, stride if i == 0 else 1, dropout))
                in_planes = planes
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        # pre-activation blocks leave the last sum un-normalised
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.groups(self.stem(x))))
        return torch.flatten(self.pool(x), 1)

    def layout(self) -> ModelLayout:
        groups = [(f"group{i}", list(group)) for i, group in enumerate(self.groups, 1)]
        return ModelLayout(
            stages=[("stem", [self.stem]), *groups],
            head=[self.bn, self.relu, self.pool, nn.Flatten(), self.classifier],
        )


def wide_resnet(
    depth: int,
    widen_factor: int,
    num_classes: int,
    in_channels: int = 3,
    dropout: float = 0.0,
) -> WideResNet:
    """Shared builder of the WRN family; ValueError unless ``(depth - 4) % 6 == 0``."""
    return WideResNet(depth, widen_factor, num_classes, in_channels, dropout)


@register_model("wrn16_2")
def wrn16_2(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-16-2 (Zagoruyko & Komodakis 2016)."""
    return wide_resnet(16, 2, num_classes, in_channels)


@register_model("wrn16_4")
def wrn16_4(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-16-4 (Zagoruyko & Komodakis 2016): 2.7 M parameters."""
    return wide_resnet(16, 4, num_classes, in_channels)


@register_model("wrn16_8")
def wrn16_8(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-16-8 (Zagoruyko & Komodakis 2016): 11.0 M parameters."""
    return wide_resnet(16, 8, num_classes, in_channels)


@register_model("wrn28_2")
def wrn28_2(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-28-2 (Zagoruyko & Komodakis 2016): 1.47 M parameters for 100 classes."""
    return wide_resnet(28, 2, num_classes, in_channels)


@register_model("wrn28_10")
def wrn28_10(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-28-10 (Zagoruyko & Komodakis 2016): 36.5 M parameters."""
    return wide_resnet(28, 10, num_classes, in_channels)


@register_model("wrn40_2")
def wrn40_2(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-40-2 (Zagoruyko & Komodakis 2016): 2.2 M parameters."""
    return wide_resnet(40, 2, num_classes, in_channels)


@register_model("wrn40_4")
def wrn40_4(num_classes: int, in_channels: int = 3) -> WideResNet:
    """WRN-40-4 (Zagoruyko & Komodakis 2016): 8.9 M parameters."""
    return wide_resnet(40, 4, num_classes, in_channels)

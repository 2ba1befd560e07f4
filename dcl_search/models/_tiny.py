"""Tiny models for CPU demos and tests on 8x8 digits; they train in seconds on two cores."""

from __future__ import annotations

import torch
from torch import nn

from dcl_search.models._base import ImageClassifier, conv3x3, init_weights, register_model


class TinyCNN(ImageClassifier):
    """Three conv-BN-ReLU layers (16, 32, 64 channels; the last two stride 2) and a linear layer.

    Not from a paper: a minimal stand-in for a CNN, with batch normalisation of Ioffe &
    Szegedy 2015, "Batch Normalization" (ICML). About 24 k parameters for 1 channel, 10 classes.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_planes = in_channels
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            layers += [conv3x3(in_planes, planes, stride), nn.BatchNorm2d(planes), nn.ReLU(True)]
            in_planes = planes
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)


class MLP(ImageClassifier):
    """A two-hidden-layer perceptron (Rumelhart, Hinton & Williams 1986) on 8x8 pooled input.

    Adaptive average pooling to 8x8 first makes it accept any image size ≥ 8x8 with a fixed
    number of inputs; for 8x8 digits it is the identity.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, hidden: int = 128, grid: int = 8
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.body = nn.Sequential(
            nn.Linear(in_channels * grid * grid, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )
        self.num_features = hidden
        self.classifier = nn.Linear(hidden, num_classes)
        for m in self.body:
            if isinstance(m, nn.Linear):
                # He init suits the ReLU that follows each hidden layer
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.flatten(self.pool(x), 1))


@register_model("tiny_cnn")
def tiny_cnn(num_classes: int, in_channels: int = 3) -> TinyCNN:
    """Tiny conv net (see :class:`TinyCNN`) for fast CPU demos."""
    return TinyCNN(num_classes, in_channels)


@register_model("mlp")
def mlp(num_classes: int, in_channels: int = 3) -> MLP:
    """Two-hidden-layer MLP (see :class:`MLP`) for fast CPU demos."""
    return MLP(num_classes, in_channels)

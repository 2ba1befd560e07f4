"""Tiny models for CPU demos and tests on 8x8 digits; they train in seconds on two cores."""

from __future__ import annotations

import torch
from torch import nn

from dcl_search.models._base import (
    ImageClassifier,
    ModelLayout,
    conv3x3,
    dropout_classifier,
    init_weights,
    register_model,
)


class TinyCNN(ImageClassifier):
    """Three conv-BN-ReLU layers (16, 32, 64 channels; the last two stride 2) and a linear layer.

    Not from a paper: a minimal stand-in for a CNN, with batch normalisation of Ioffe &
    Szegedy 2015, "Batch Normalization" (ICML). About 24 k parameters for 1 channel, 10 classes.
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, width: int = 16, fc_hidden: int = 0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_planes = in_channels
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            layers += [conv3x3(in_planes, planes, stride), nn.BatchNorm2d(planes), nn.ReLU(True)]
            in_planes = planes
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = (
            dropout_classifier(in_planes, num_classes, fc_hidden)
            if fc_hidden
            else nn.Linear(in_planes, num_classes)
        )
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)

    def layout(self) -> ModelLayout:
        # fresh wrappers over ``body``'s modules: regrouping body itself would rename the
        # state_dict keys of saved checkpoints
        body = list(self.body)
        layers = [nn.Sequential(*body[i : i + 3]) for i in range(0, len(body), 3)]
        return ModelLayout(
            stages=[(f"layer{i}", [layer]) for i, layer in enumerate(layers, 1)],
            head=[self.pool, nn.Flatten(), self.classifier],
        )


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

    def layout(self) -> ModelLayout:
        # the input pooling and flattening ride with the first hidden layer, so that every
        # block is one hidden layer; fresh wrappers keep the state_dict keys unchanged
        linear1, relu1, linear2, relu2 = self.body
        return ModelLayout(
            stages=[
                ("hidden1", [nn.Sequential(self.pool, nn.Flatten(), linear1, relu1)]),
                ("hidden2", [nn.Sequential(linear2, relu2)]),
            ],
            head=[self.classifier],
            feature_maps=False,
        )


@register_model("tiny_cnn")
def tiny_cnn(num_classes: int, in_channels: int = 3) -> TinyCNN:
    """Tiny conv net (see :class:`TinyCNN`) for fast CPU demos."""
    return TinyCNN(num_classes, in_channels)


@register_model("tiny_cnn_fc")
def tiny_cnn_fc(num_classes: int, in_channels: int = 3) -> TinyCNN:
    """:class:`TinyCNN` with Fang & Lin's classifier shape (three FC layers of 64, dropout 0.5
    after the first two), so every intra-model option applies to a model that trains in
    seconds on a CPU."""
    return TinyCNN(num_classes, in_channels, fc_hidden=64)


@register_model("mlp")
def mlp(num_classes: int, in_channels: int = 3) -> MLP:
    """Two-hidden-layer MLP (see :class:`MLP`) for fast CPU demos."""
    return MLP(num_classes, in_channels)

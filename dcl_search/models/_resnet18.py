"""ResNet-18 for small images, as used by Fang & Lin.

He et al. 2016, "Deep Residual Learning for Image Recognition" (CVPR), the 18-layer network of
Table 1 with the ImageNet stem (7x7 stride-2 conv and max pool) replaced by a 3x3 stride-1 conv,
the usual CIFAR adaptation, and the three-layer dropout classifier of Fang & Lin,
"Intra-Model Collaborative Learning of Neural Networks", Sec. IV.
"""

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
from dcl_search.models._resnet import BasicBlock


class ResNet18(ImageClassifier):
    """ResNet-18 for small images (see the module docstring).

    A 3x3 stem of 64 channels (no max pool), four stages of two basic blocks with 64, 128,
    256, 512 channels (the last three start with stride 2), global average pooling and
    :func:`dropout_classifier`.
    """

    def __init__(self, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(in_channels, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        stages: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(
                    BasicBlock(in_planes, planes, stride, "B"), BasicBlock(planes, planes, 1, "B")
                )
            )
            in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = dropout_classifier(in_planes, num_classes)
        init_weights(self)  # convolutions and norms; the Linear layers keep PyTorch's default

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def layout(self) -> ModelLayout:
        stages = [(f"stage{i}", list(stage)) for i, stage in enumerate(self.stages, 1)]
        return ModelLayout(
            stages=[("stem", [self.stem]), *stages],
            head=[self.pool, nn.Flatten(), self.classifier],
        )


@register_model("resnet18")
def resnet18(num_classes: int, in_channels: int = 3) -> ResNet18:
    """ResNet-18 with a 3-layer dropout classifier (Fang & Lin, Sec. IV).

    11.7 M parameters for 10 classes.
    """
    return ResNet18(num_classes, in_channels)

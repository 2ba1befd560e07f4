"""VGG-16 with batch norm for small images, as used by Fang & Lin.

Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (ICLR), configuration D, with batch normalisation (Ioffe & Szegedy 2015) after
every convolution and the three-layer dropout classifier of Fang & Lin, "Intra-Model
Collaborative Learning of Neural Networks", Sec. IV.
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

# configuration D: output channels of each 3x3 conv, one tuple per stage; each stage ends in a
# 2x2 max pool
VGG16_STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


class _ConvBlock(nn.Module):
    """conv3x3-BN-ReLU, then the stage's max pool when it is the last block of its stage."""

    def __init__(self, in_planes: int, planes: int, pool: bool) -> None:
        super().__init__()
        self.conv = conv3x3(in_planes, planes)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        # ceil_mode keeps a 1x1 map 1x1, so 8x8 inputs survive five pools (8-4-2-1-1-1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        return x if self.pool is None else self.pool(x)


class VGG(ImageClassifier):
    """VGG with batch norm for small images: five stages of conv-BN-ReLU blocks, each stage
    closed by a 2x2 max pool, then global average pooling and :func:`dropout_classifier`.

    The global average pool (instead of flattening a 1x1 map for 32x32 inputs) lets any input
    size of at least 8x8 reach the same 512 features.
    """

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        in_planes = in_channels
        built: list[nn.Module] = []
        for widths in stages:
            blocks = []
            for i, planes in enumerate(widths):
                blocks.append(_ConvBlock(in_planes, planes, pool=i == len(widths) - 1))
                in_planes = planes
            built.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*built)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.classifier = dropout_classifier(in_planes, num_classes)
        init_weights(self)  # convolutions and norms; the Linear layers keep PyTorch's default

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(x)), 1)

    def layout(self) -> ModelLayout:
        return ModelLayout(
            stages=[(f"block{i}", list(stage)) for i, stage in enumerate(self.stages, 1)],
            head=[self.pool, nn.Flatten(), self.classifier],
        )


@register_model("vgg16")
def vgg16(num_classes: int, in_channels: int = 3) -> VGG:
    """VGG-16 with batch norm and a 3-layer dropout classifier (Fang & Lin, Sec. IV).

    15.2 M parameters for 10 classes.
    """
    return VGG(VGG16_STAGES, num_classes, in_channels)

"""Image classifiers, registered by name: CIFAR ResNets, Wide ResNets and tiny demo models.

Every model maps ``[N, C, H, W]`` (``H, W >= 8``) to logits ``[N, num_classes]`` and exposes
``model.features(x) -> [N, D]`` and ``model.classifier`` (the final linear layer). Add a model
without editing this package::

    from dcl_search.models import register_model

    @register_model("my_net")
    def my_net(num_classes: int, in_channels: int = 3) -> torch.nn.Module: ...
"""

from __future__ import annotations

from dcl_search.models._base import (
    MODELS,
    ImageClassifier,
    build_model,
    count_parameters,
    register_model,
)
from dcl_search.models._resnet import CifarResNet, cifar_resnet
from dcl_search.models._tiny import MLP, TinyCNN
from dcl_search.models._wide_resnet import WideResNet, wide_resnet

__all__ = [
    "MLP",
    "MODELS",
    "CifarResNet",
    "ImageClassifier",
    "TinyCNN",
    "WideResNet",
    "build_model",
    "cifar_resnet",
    "count_parameters",
    "register_model",
    "wide_resnet",
]

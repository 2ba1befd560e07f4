"""Image classifiers, registered by name: CIFAR ResNets, Wide ResNets, VGG-16, ResNet-18 and
tiny demo models.

Every model maps ``[N, C, H, W]`` (``H, W >= 8``) to logits ``[N, num_classes]`` and exposes
``model.features(x) -> [N, D]``, ``model.classifier`` (pooled features to logits: a Linear or a
Sequential whose last module is a Linear) and ``model.layout()`` (the model as stages of blocks
and a head, see :class:`ModelLayout`). Add a model without editing this package::

    from dcl_search.models import register_model

    @register_model("my_net")
    def my_net(num_classes: int, in_channels: int = 3) -> torch.nn.Module: ...
"""

from __future__ import annotations

from dcl_search._lazy import lazy_exports
from dcl_search.models._registry import MODELS, register_model

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ImageClassifier": "._base",
        "ModelLayout": "._base",
        "build_model": "._base",
        "count_parameters": "._base",
        "CifarResNet": "._resnet",
        "cifar_resnet": "._resnet",
        "ResNet18": "._resnet18",
        "MLP": "._tiny",
        "TinyCNN": "._tiny",
        "VGG": "._vgg",
        "WideResNet": "._wide_resnet",
        "wide_resnet": "._wide_resnet",
    },
)

__all__ = [
    "MLP",
    "MODELS",
    "VGG",
    "CifarResNet",
    "ImageClassifier",
    "ModelLayout",
    "ResNet18",
    "TinyCNN",
    "WideResNet",
    "build_model",
    "cifar_resnet",
    "count_parameters",
    "register_model",
    "wide_resnet",
]

"""The model registry: names known without importing torch (see :mod:`dcl_search._lazy`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dcl_search._registry import Registry

if TYPE_CHECKING:
    from torch import nn

ModelFactory = Callable[..., "nn.Module"]

_BUILTIN = {
    "dcl_search.models._resnet": ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    "dcl_search.models._resnet18": ("resnet18",),
    "dcl_search.models._tiny": ("tiny_cnn", "tiny_cnn_fc", "mlp"),
    "dcl_search.models._vgg": ("vgg16",),
    "dcl_search.models._wide_resnet": (
        "wrn16_2",
        "wrn16_4",
        "wrn16_8",
        "wrn28_2",
        "wrn28_10",
        "wrn40_2",
        "wrn40_4",
    ),
}

MODELS: Registry[ModelFactory] = Registry("model", builtin=_BUILTIN)
"""Name → ``factory(num_classes: int, in_channels: int = 3) -> nn.Module``."""


def register_model(name: str, *, overwrite: bool = False) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory under ``name`` (see :data:`MODELS`).

    >>> @register_model("my_net")
    ... def my_net(num_classes: int, in_channels: int = 3) -> nn.Module: ...
    """
    return MODELS.register(name, overwrite=overwrite)

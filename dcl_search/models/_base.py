"""The model builder and the structure every registered model shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_search.models._registry import MODELS, ModelFactory, register_model  # noqa: F401


def _check_positive_int(name: str, value: object, minimum: int) -> int:
    # bool is an int subclass, but build_model("x", True) is a mistake, not 1 class
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def build_model(name: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes.

    The model maps a float tensor ``[N, in_channels, H, W]`` (any ``H, W >= 8``) to logits
    ``[N, num_classes]``; ``model.features(x)`` gives the pooled features ``[N, D]`` and
    ``model.classifier`` maps the pooled features to logits: a :class:`torch.nn.Linear` or a
    :class:`torch.nn.Sequential` whose last module is a Linear.

    Raises:
        ValueError: ``num_classes < 2`` or ``in_channels < 1``.
        RegistryError: ``name`` is not registered (the message lists the known names).
    """
    _check_positive_int("num_classes", num_classes, 2)
    _check_positive_int("in_channels", in_channels, 1)
    factory = MODELS.get(name)
    return factory(num_classes=num_classes, in_channels=in_channels)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (shared ones counted once), as papers report them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class ModelLayout:
    """A model as a chain: stages of blocks, then a head.

    Running every block of every stage in order and then every head module equals
    ``model(x)``. The layout only references the model's own submodules (parameter-free
    wrappers such as a fresh :class:`torch.nn.Sequential` or :class:`torch.nn.Flatten` aside),
    and each parameter belongs to exactly one block or head module. This is what intra-model
    collaboration (Fang & Lin, "Intra-Model Collaborative Learning of Neural Networks") and
    multi-head splits (Song & Chai 2018, "Collaborative Learning for Deep Neural Networks")
    need: places to cut the network and intermediate outputs to attach losses to.
    """

    stages: list[tuple[str, list[nn.Module]]]
    """(stage name, blocks in order); names are unique, e.g. ``"stem"``, ``"stage1"``."""
    head: list[nn.Module]
    """After the last block: final norm / ReLU if any, pooling, flatten, classifier (last)."""
    feature_maps: bool = True
    """False when blocks output ``[N, D]`` vectors (an MLP) rather than ``[N, C, H, W]``."""


class ImageClassifier(nn.Module):
    """Base of the registered models: ``forward(x) == classifier(features(x))``.

    Subclasses set ``self.classifier`` (it maps the ``num_features`` pooled features to
    logits; a :class:`torch.nn.Linear` or a :class:`torch.nn.Sequential` whose last module is
    a Linear), implement :meth:`features`, and, to take part in heads / intra-model options,
    :meth:`layout`; extra heads can then reuse the pooled features.
    """

    classifier: nn.Linear | nn.Sequential
    num_features: int

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def layout(self) -> ModelLayout:
        """This model as stages of blocks and a head (see :class:`ModelLayout`)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement layout() to be used with heads/intra-model "
            "options."
        )


def init_weights(model: nn.Module) -> None:
    """He (Kaiming-normal) init for convolutions, identity affine for batch norms."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # fan_out as in the ResNet / WRN reference code: keeps backward variance stable
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    # no bias: every conv here is followed by batch norm, which would cancel it
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def dropout_classifier(in_features: int, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """Three fully-connected layers, dropout 0.5 after the first two (Fang & Lin, Sec. IV).

    Fang & Lin, "Intra-Model Collaborative Learning of Neural Networks": "followed by three
    fully-connected layers ... Dropout with a probability of 0.5 is used in the first two
    layers of classifier". The last module is the logit Linear.
    """
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )

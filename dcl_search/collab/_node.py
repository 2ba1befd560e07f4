"""A graph node trained with multi-head and/or intra-model collaborative learning.

:class:`CollaborativeNode` wraps one registered model. Its inference path *is* that model (head
0, no dropout branching): the node costs the base network at test time, its accuracy is head
0's, and :meth:`CollaborativeNode.inference_model` returns the plain model (weights shared) for
export. In training, :meth:`CollaborativeNode.train_forward` returns head 0's logits for the
graph's edges plus the node's own losses:

- ``own``: per-sample consensus loss over the population of predictions (all heads × all
  hierarchical-dropout branches; Fang & Lin Eqs. 3–4), replacing the node's label loss under
  its self-loop gate. With one head and no ``out`` it is None (the plain cross-entropy).
- ``extra``: losses that are functions of weights only (``kernel``), added ungated.
- ``local``: (loss, parameters) pairs that must update only those parameters (``mid`` and
  ``pull_push``, each confined to its own layer and auxiliary module).

Multi-head gradient scaling (Song & Chai's backpropagation rescaling). The shared layers'
gradient is scaled by 1/H at the split. The loss *value* is Eq. 3's mean over heads, but its
gradient is multiplied by H: each head then learns from its own loss at full strength, as an
individually trained network would with the same recipe, and the shared layers receive the
mean of the heads' gradients — the purpose the rescaling serves in Song & Chai. (Taking Eq. 3's
1/H and the 1/H rescaling literally together would train heads at 1/H and the shared layers at
1/H² of the recipe's learning rate.) Graph edges reach the node through head 0, so their
gradient into the shared layers is scaled by 1/H too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dcl_search.collab._losses import (
    LocalClassifier,
    consensus_loss,
    hierarchical_dropout,
    kernel_loss,
    mid_losses,
    pull_push_loss,
    pull_push_weights,
    scale_gradient,
)
from dcl_search.collab._options import MULTI_INSTANCE, NodeOptions
from dcl_search.models import build_model

# The consensus over several heads uses Song & Chai's values unless ``out`` sets its own.
HEADS_ALPHA = 0.5
HEADS_TEMPERATURE = 2.0


@dataclass
class NodeOutput:
    """What one training forward pass of a node gives the trainer."""

    logits: torch.Tensor
    own: torch.Tensor | None = None
    extra: torch.Tensor | None = None
    local: list[tuple[torch.Tensor, list[nn.Parameter]]] = field(default_factory=list)


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    # the last norm's width is the block's output width in both post- and pre-activation blocks
    return norms[-1].num_features if norms else convs[-1].out_channels


class CollaborativeNode(nn.Module):
    """One graph node with ``options`` (see :mod:`dcl_search.collab`) on ``model``."""

    def __init__(
        self, model: str, options: NodeOptions, num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.options = options
        # resolved once: train_forward reads them every step
        self._out, self._mid, self._pull_push, self._kernel = (
            options.option(name) for name in ("out", "mid", "pull_push", "kernel")
        )
        base = build_model(model, num_classes, in_channels)
        # not registered: its modules are registered below, once, as trunk / head 0
        object.__setattr__(self, "_base", base)
        layout = base.layout()
        names = [name for name, _ in layout.stages]
        cut = -1 if options.split in (None, MULTI_INSTANCE) else names.index(options.split)
        if options.heads == 1:
            cut = len(names) - 1  # one head: everything before the classifier is "trunk"
        shared = [b for _, blocks in layout.stages[: cut + 1] for b in blocks]
        self.trunk = nn.ModuleList(shared)
        tails = [self._tail(layout, cut)]
        for _ in range(options.heads - 1):
            tails.append(self._tail(build_model(model, num_classes, in_channels).layout(), cut))
        self.tails = nn.ModuleList(tails)
        # main path = the network kept at inference: trunk + head 0's blocks, with stage names
        stage_of = [name for name, blocks in layout.stages for _ in blocks]
        main_blocks = [*self.trunk, *self.tails[0].blocks]
        self._build_intra(main_blocks, stage_of, layout, num_classes)

    @staticmethod
    def _tail(layout, cut: int) -> nn.Module:
        tail = nn.Module()
        tail.blocks = nn.ModuleList([b for _, blocks in layout.stages[cut + 1 :] for b in blocks])
        tail.pre = nn.Sequential(*layout.head[:-1])  # norm / pooling / flatten
        tail.classifier = layout.head[-1]
        return tail

    def _build_intra(self, blocks: list[nn.Module], stage_of: list[str], layout, classes: int):
        self._blocks = blocks  # plain list: already registered in trunk / tails[0]
        last_of_stage = [
            i == len(blocks) - 1 or stage_of[i] != stage_of[i + 1] for i in range(len(blocks))
        ]
        self.mid = nn.ModuleDict()
        self.pull_push = nn.ModuleDict()
        for name, module_dict in (("mid", self.mid), ("pull_push", self.pull_push)):
            opts = self._mid if name == "mid" else self._pull_push
            if opts is None:
                continue
            # every block but the last (whose output is the network's own prediction)
            for i in range(len(blocks) - 1):
                if opts.at == "stages" and not last_of_stage[i]:
                    continue
                width = _out_channels(blocks[i])
                module_dict[str(i)] = (
                    LocalClassifier(width, classes)
                    if name == "mid"
                    else nn.Conv2d(width, width, 1)  # the paper's projection g_i
                )
        self._kernel_convs: list[nn.Conv2d] = []
        kernel = self._kernel
        if kernel is not None:
            stage_names = [name for name, _ in layout.stages][-kernel.stages :]
            self._kernel_convs = [
                m
                for block, stage in zip(blocks, stage_of, strict=True)
                if stage in stage_names
                for m in block.modules()
                if isinstance(m, nn.Conv2d)
            ]

    # -- inference --------------------------------------------------------------------------

    def inference_model(self) -> nn.Module:
        """The plain base network (head 0), sharing this node's weights."""
        return self._base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._base(x)

    # -- training ----------------------------------------------------------------------------

    def train_forward(self, x: torch.Tensor, labels: torch.Tensor) -> NodeOutput:
        heads = self.options.heads
        features: list[torch.Tensor] = []
        h = x
        for block in self.trunk:
            h = block(h)
            features.append(h)
        if heads > 1 and len(self.trunk):
            h = scale_gradient(h, 1.0 / heads)
        out = self._out
        population = []
        for index, tail in enumerate(self.tails):
            g = h
            for block in tail.blocks:
                g = block(g)
                if index == 0:
                    features.append(g)
            g = tail.pre(g)
            if out is not None:
                population.append(hierarchical_dropout(tail.classifier, g, out.branches))
            else:
                population.append(tail.classifier(g).unsqueeze(0))
        predictions = torch.cat(population)
        logits = predictions[0]
        result = NodeOutput(logits)
        if predictions.shape[0] > 1:
            alpha = out.alpha if out is not None else HEADS_ALPHA
            temperature = out.temperature if out is not None else HEADS_TEMPERATURE
            own = consensus_loss(predictions, labels, alpha, temperature)
            result.own = scale_gradient(own, float(heads)) if heads > 1 else own
        if self._kernel_convs:
            weight = self._kernel.weight
            result.extra = (
                weight * torch.stack([kernel_loss(c.weight) for c in self._kernel_convs]).sum()
            )
        result.local = self._local_losses(features, x, labels, logits)
        return result

    def _local_losses(
        self,
        features: list[torch.Tensor],
        x: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
    ) -> list[tuple[torch.Tensor, list[nn.Parameter]]]:
        per_block: dict[int, torch.Tensor] = {}
        mid = self._mid
        if mid is not None:
            at = [int(i) for i in self.mid]
            local_logits = [self.mid[str(i)](features[i]) for i in at]
            losses = mid_losses(local_logits, logits, labels, mid.alpha, mid.beta, mid.temperature)
            per_block.update(dict(zip(at, losses, strict=True)))
        pull_push = self._pull_push
        if pull_push is not None:
            at = [int(i) for i in self.pull_push]
            onehot = F.one_hot(labels, logits.shape[1]).float()
            weights = pull_push_weights(len(at), tuple(pull_push.pull), tuple(pull_push.push))
            for i, (a_pull, a_push) in zip(at, weights, strict=True):
                projected = self.pull_push[str(i)](features[i])
                loss = pull_push_loss(projected, x, onehot, a_pull, a_push)
                per_block[i] = per_block[i] + loss if i in per_block else loss
        result = []
        for i, loss in sorted(per_block.items()):
            aux = [m[str(i)] for m in (self.mid, self.pull_push) if str(i) in m]
            result.append((loss, _params(self._blocks[i], *aux)))
        return result

"""A training loop with the structure of the original DCL implementation, for side-by-side timing.

What makes it the reference (DESIGN.md, "Known weaknesses"): a torch DataLoader with CPU-side
torchvision RandomCrop + RandomHorizontalFlip on PIL images, fp32, one optimizer and one
``backward(retain_graph=True)`` per node, the KL computed from probabilities, a ``.item()`` per
edge per step, and every edge's loss computed even when its gate is cutoff. Same models, batch
size, optimizer settings and gates as ours, so only the loop differs.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from dcl_search.graphs import gate_of
from dcl_search.models import build_model


class _PilDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = [
            Image.fromarray(np.ascontiguousarray(x.permute(1, 2, 0).numpy()).squeeze())
            for x in images
        ]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def _gate_weight(gate: str, k: int, k_end: int) -> float:
    return {
        "through": 1.0,
        "cutoff": 0.0,
        "linear": k / k_end,
        "negative_linear": 1 - k / k_end,
    }.get(gate, 1.0)


class ReferenceLoop:
    def __init__(
        self,
        graph: nx.DiGraph,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int,
        device: str,
        workers: int = 2,
        padding: int = 4,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        size = images.shape[-1]
        transform = transforms.Compose(
            [
                transforms.RandomCrop(size, padding=padding),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(mean, std),
            ]
        )
        self.loader = DataLoader(
            _PilDataset(images, labels, transform),
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            drop_last=True,
            persistent_workers=workers > 0,
        )
        self.device = torch.device(device)
        self.graph = graph
        self.nodes = sorted(graph.nodes)
        self.models = [
            build_model(graph.nodes[n]["model"], num_classes, images.shape[1]).to(self.device)
            for n in self.nodes
        ]
        self.optimizers = [
            torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
            for m in self.models
        ]
        self.k, self.k_end = 0, 10**6
        self.log: list[float] = []

    def run_steps(self, steps: int) -> int:
        """Trains ``steps`` batches; returns the number of images seen."""
        seen = 0
        while seen < steps * self.loader.batch_size:
            for x, y in self.loader:
                x, y = x.to(self.device), y.to(self.device)
                self._step(x, y)
                seen += len(y)
                if seen >= steps * self.loader.batch_size:
                    break
        return seen

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        outputs = [m(x) for m in self.models]
        probs = [F.softmax(z, dim=1) for z in outputs]
        for t in self.nodes:
            loss = 0
            for s in self.nodes:
                gate = gate_of(self.graph, s, t)
                if s == t:
                    edge = F.cross_entropy(outputs[t], y)
                else:
                    edge = F.kl_div(torch.log(probs[t]), probs[s].detach(), reduction="batchmean")
                self.log.append(edge.item())  # the per-edge host sync of the original
                loss = loss + _gate_weight(gate, self.k, self.k_end) * edge
            self.optimizers[t].zero_grad()
            loss.backward(retain_graph=True)
            self.optimizers[t].step()
        self.k += 1

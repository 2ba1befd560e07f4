"""The losses on the edges of a knowledge-transfer graph and the per-node total.

Self-loop t → t: ℓ_n = CE(y_n, z_t(x_n)), the cross-entropy of node t against the labels.
Edge s → t (s ≠ t): ℓ_n = T² · KL(p_s(x_n) ‖ p_t(x_n)) with p = softmax(z / T), computed from
log_softmax for stability, and p_s detached so only t learns from the edge (Minami et al.,
ACCV 2020, Eq. 2; the T² factor keeps gradient magnitudes independent of T, Hinton et al. 2015).
Node loss: L_t = Σ_s G_{s,t}(ℓ_{s,t}). Because every source is detached, Σ_t L_t can be
back-propagated once and each parameter still receives only its own node's gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dcl_search.gates._gates import Gate, GateContext, build_gate


def label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of ``logits`` against integer ``labels`` (the self-loop loss)."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def kl_loss(
    source_log_probs: torch.Tensor, target_log_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-sample T² · KL(p_s ‖ p_t) from log-probabilities at temperature T (source detached)."""
    kl = F.kl_div(target_log_probs, source_log_probs.detach(), reduction="none", log_target=True)
    return kl.sum(dim=1) * (temperature * temperature)


@dataclass(frozen=True)
class _Edge:
    source: int
    target: int
    gate: Gate


class GraphLoss:
    """Computes every node's loss L_t for one batch, touching only the edges that teach.

    Built once per graph from ``{(s, t): gate_name}`` (self-loops included, a missing pair is
    cutoff). Cutoff edges are dropped at construction, so their loss is never computed.
    """

    def __init__(self, num_nodes: int, gates: dict[tuple[int, int], str], temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"The temperature is {temperature}, but must be > 0.")
        self.num_nodes = num_nodes
        self.temperature = float(temperature)
        built = {pair: build_gate(name) for pair, name in sorted(gates.items())}
        self.edges = tuple(_Edge(s, t, g) for (s, t), g in built.items() if g.computes_loss)
        self._kl_nodes = sorted(
            {n for e in self.edges if e.source != e.target for n in (e.source, e.target)}
        )
        self._correct_sources = sorted(
            {e.source for e in self.edges if e.source != e.target and e.gate.needs_source_correct}
        )

    @property
    def needed_sources(self) -> set[int]:
        """Nodes whose outputs some teaching edge reads (a frozen node outside it need not run)."""
        return {e.source for e in self.edges}

    def __call__(
        self,
        logits: Sequence[torch.Tensor | None],
        labels: torch.Tensor,
        progress: float | torch.Tensor,
        own_losses: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """Per-node losses, a float32 vector of length M (0 for nodes nothing teaches).

        ``own_losses[t]``, where given, is node t's per-sample loss to use on its self-loop in
        place of the cross-entropy (e.g. a multi-head consensus loss, see dcl_search.collab).
        """
        inv_t = 1.0 / self.temperature
        log_probs = {n: F.log_softmax(logits[n].float() * inv_t, dim=1) for n in self._kl_nodes}
        correct = {n: logits[n].argmax(dim=1) == labels for n in self._correct_sources}
        per_node: list[torch.Tensor | None] = [None] * self.num_nodes
        for edge in self.edges:
            if edge.source == edge.target:
                own = own_losses[edge.target] if own_losses is not None else None
                per_sample = own if own is not None else label_loss(logits[edge.target], labels)
                context = GateContext(progress)
            else:
                per_sample = kl_loss(
                    log_probs[edge.source], log_probs[edge.target], self.temperature
                )
                context = GateContext(progress, correct.get(edge.source))
            term = edge.gate(per_sample, context)
            current = per_node[edge.target]
            per_node[edge.target] = term if current is None else current + term
        zero = labels.new_zeros((), dtype=torch.float32)
        return torch.stack([zero if loss is None else loss for loss in per_node])

from __future__ import annotations

import pytest
import torch

from dcl_search.gates import GraphLoss, kl_loss, label_loss


def _logits(seed: int, n: int = 5, c: int = 4) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def test_dml_node_losses_are_label_loss_plus_kl() -> None:
    z0, z1 = _logits(0), _logits(1)
    y = torch.tensor([0, 1, 2, 3, 0])
    gates = {(0, 0): "through", (1, 1): "through", (0, 1): "through", (1, 0): "through"}
    losses = GraphLoss(2, gates)([z0, z1], y, 0.0)
    lp0, lp1 = z0.log_softmax(1), z1.log_softmax(1)
    expected0 = label_loss(z0, y).mean() + kl_loss(lp1, lp0, 1.0).mean()
    expected1 = label_loss(z1, y).mean() + kl_loss(lp0, lp1, 1.0).mean()
    assert losses.tolist() == pytest.approx([expected0.item(), expected1.item()], rel=1e-6)


def test_temperature_scales_and_softens_edges_only() -> None:
    z0, z1 = _logits(2), _logits(3)
    y = torch.tensor([1, 1, 0, 2, 3])
    losses = GraphLoss(2, {(0, 0): "through", (1, 0): "through", (1, 1): "through"}, 3.0)(
        [z0, z1], y, 0.0
    )
    lp0, lp1 = (z0 / 3).log_softmax(1), (z1 / 3).log_softmax(1)
    expected = label_loss(z0, y).mean() + kl_loss(lp1, lp0, 3.0).mean()
    assert losses[0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses[1].item() == pytest.approx(label_loss(z1, y).mean().item(), rel=1e-6)


def test_linear_and_correct_gates_inside_the_graph_loss() -> None:
    z0, z1 = _logits(4), _logits(5)
    y = z1.argmax(1).clone()
    y[:2] = (y[:2] + 1) % 4  # node 1 is wrong on the first two samples
    gates = {(0, 0): "through", (1, 0): "correct", (1, 1): "through", (0, 1): "linear"}
    losses = GraphLoss(2, gates)([z0, z1], y, 0.25)
    lp0, lp1 = z0.log_softmax(1), z1.log_softmax(1)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])
    expected0 = label_loss(z0, y).mean() + (kl_loss(lp1, lp0, 1.0) * mask).sum() / 5
    expected1 = label_loss(z1, y).mean() + 0.25 * kl_loss(lp0, lp1, 1.0).mean()
    assert losses.tolist() == pytest.approx([expected0.item(), expected1.item()], rel=1e-6)


def test_cutoff_edges_are_never_built() -> None:
    loss = GraphLoss(2, {(0, 0): "through", (1, 0): "cutoff", (1, 1): "through"})
    assert [(e.source, e.target) for e in loss.edges] == [(0, 0), (1, 1)]


def test_correct_on_a_self_loop_equals_through() -> None:
    z, y = _logits(6), torch.tensor([0, 1, 2, 3, 0])
    a = GraphLoss(1, {(0, 0): "correct"})([z], y, 0.5)
    b = GraphLoss(1, {(0, 0): "through"})([z], y, 0.5)
    assert a.item() == pytest.approx(b.item())


def _three_linear_nodes() -> list[torch.nn.Linear]:
    torch.manual_seed(0)
    return [torch.nn.Linear(3, 4) for _ in range(3)]


def _grads(models: list[torch.nn.Linear]) -> list[torch.Tensor]:
    return [
        m.weight.grad.clone() if m.weight.grad is not None else torch.zeros_like(m.weight)
        for m in models
    ]


def test_each_node_gets_gradient_only_from_its_own_incoming_edges() -> None:
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(7))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    gates = {
        (0, 0): "through",
        (1, 0): "through",
        (2, 0): "linear",
        (1, 1): "through",
        (0, 1): "correct",
        (2, 2): "through",
        (2, 1): "cutoff",
    }
    models = _three_linear_nodes()
    losses = GraphLoss(3, gates)([m(x) for m in models], y, 0.5)
    losses.sum().backward()
    together = _grads(models)
    for node in range(3):  # the gradient of L_node alone, w.r.t. node's own weights
        models = _three_linear_nodes()
        GraphLoss(3, gates)([m(x) for m in models], y, 0.5)[node].backward()
        alone = _grads(models)
        assert torch.allclose(together[node], alone[node], atol=1e-7)
        others = [alone[i] for i in range(3) if i != node]
        assert all(g.abs().sum() == 0 for g in others), "a node's loss leaked into another node"


def test_cutoff_contributes_no_gradient() -> None:
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(8))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    with_cutoff = {(0, 0): "through", (1, 0): "cutoff", (1, 1): "through", (0, 1): "cutoff"}
    without_edges = {(0, 0): "through", (1, 1): "through"}
    grads = []
    for gates in (with_cutoff, without_edges):
        models = _three_linear_nodes()[:2]
        GraphLoss(2, gates)([m(x) for m in models], y, 0.5).sum().backward()
        grads.append(_grads(models))
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)

from __future__ import annotations

import math

import pytest
import torch

from dcl_search._errors import RegistryError
from dcl_search.gates import (
    GATES,
    Gate,
    GateContext,
    build_gate,
    kl_loss,
    label_loss,
    register_gate,
)

LOSS = torch.tensor([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("name", "progress", "expected"),
    [
        ("through", 0.3, 2.0),
        ("cutoff", 0.3, 0.0),
        ("linear", 0.0, 0.0),
        ("linear", 0.25, 0.5),
        ("linear", 1.0, 2.0),
        ("negative_linear", 0.0, 2.0),
        ("negative_linear", 0.25, 1.5),
        ("negative_linear", 1.0, 0.0),
    ],
)
def test_gate_values_at_progress(name: str, progress: float, expected: float) -> None:
    assert build_gate(name)(LOSS, GateContext(progress)).item() == pytest.approx(expected)


def test_linear_gate_accepts_a_tensor_progress() -> None:
    value = build_gate("linear")(LOSS, GateContext(torch.tensor(0.5)))
    assert value.item() == pytest.approx(1.0)


def test_correct_gate_masks_samples_and_divides_by_batch_size() -> None:
    context = GateContext(0.5, source_correct=torch.tensor([True, False, True]))
    # (1 + 3) / 3, not (1 + 3) / 2: the reference divides by the batch size
    assert build_gate("correct")(LOSS, context).item() == pytest.approx(4.0 / 3.0)


def test_correct_gate_on_a_self_loop_is_through() -> None:
    assert build_gate("correct")(LOSS, GateContext(0.5, None)).item() == pytest.approx(2.0)


def test_only_cutoff_skips_the_loss() -> None:
    assert [n for n in GATES.names() if not GATES.get(n).computes_loss] == ["cutoff"]


def test_unknown_gate_lists_known_ones() -> None:
    with pytest.raises(RegistryError, match="unknown gate 'sometimes'.*correct, cutoff, linear"):
        build_gate("sometimes")


def test_a_user_gate_registers_without_editing_core() -> None:
    @register_gate("half")
    class HalfGate(Gate):
        def __call__(self, per_sample_loss, context):
            return 0.5 * per_sample_loss.mean()

    try:
        assert build_gate("half")(LOSS, GateContext(0.0)).item() == pytest.approx(1.0)
    finally:
        GATES._entries.pop("half")


def test_label_loss_is_per_sample_cross_entropy() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    loss = label_loss(logits, torch.tensor([1, 0]))
    assert loss.tolist() == pytest.approx([-math.log(0.75), math.log(2.0)])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kl_loss_matches_hand_computation(temperature: float) -> None:
    source = torch.tensor([[0.0, 2.0 * math.log(3.0)]])
    target = torch.tensor([[1.0, 1.0]])
    log_ps = torch.log_softmax(source / temperature, dim=1)
    log_pt = torch.log_softmax(target / temperature, dim=1)
    p = [math.exp(v) for v in log_ps[0].tolist()]
    q = [0.5, 0.5]
    expected = temperature**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert kl_loss(log_ps, log_pt, temperature).item() == pytest.approx(expected, rel=1e-6)
    if temperature == 1.0:  # p_s = (1/10, 9/10) for logits (0, 2 ln 3)
        assert expected == pytest.approx(0.1 * math.log(0.2) + 0.9 * math.log(1.8))


def test_kl_loss_does_not_reach_the_source() -> None:
    source = torch.randn(4, 3, requires_grad=True)
    target = torch.randn(4, 3, requires_grad=True)
    kl_loss(source.log_softmax(1), target.log_softmax(1), 1.0).sum().backward()
    assert source.grad is None
    assert target.grad is not None and target.grad.abs().sum() > 0

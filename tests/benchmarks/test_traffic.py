"""benchmarks/_traffic.py: the op-by-op memory-traffic model, on hand-counted cases."""

from __future__ import annotations

import _traffic as traffic
import torch

F32 = 4


def test_an_op_reads_its_inputs_and_writes_its_output_once() -> None:
    a, b = torch.ones(10), torch.ones(10)
    with traffic.ByteCounter() as counter:
        a + b
    assert counter.total == 3 * 10 * F32
    assert counter.by_op == {"add": 3 * 10 * F32}


def test_views_move_nothing_and_broadcasts_are_read_once() -> None:
    a, b = torch.ones(10), torch.ones(3, 10)
    with traffic.ByteCounter() as counter:
        a.view(2, 5).t()
        a.expand(3, 10) + b  # a is read once, not three times
    assert counter.by_op == {"add": (10 + 30 + 30) * F32}


def test_in_place_ops_count_their_target_read_and_written() -> None:
    a, b = torch.ones(10), torch.ones(10)
    with traffic.ByteCounter() as counter:
        a.mul_(b)
    assert counter.total == 3 * 10 * F32


def test_backward_ops_are_counted() -> None:
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4)
    with traffic.ByteCounter() as counter:
        layer(x).sum().backward()
    # forward: addmm reads bias (3), x (8×4), weight^T (4×3), writes 8×3; sum reads 8×3, writes 1
    assert counter.by_op["addmm"] == (3 + 32 + 12 + 24) * F32
    # backward: d weight = mm(grad^T, x) over the broadcast scalar gradient (read once): 1 + 32 in,
    # 12 out; d bias = sum of that gradient: 1 in, 3 out
    assert counter.by_op["mm"] == (1 + 32 + 12) * F32
    assert counter.by_op["sum"] == (24 + 1 + 1 + 3) * F32


def test_bytes_of_a_half_precision_view() -> None:
    assert traffic.tensor_bytes(torch.zeros(4, 6, dtype=torch.bfloat16)[:, :3]) == 12 * 2

"""benchmarks/train_step.py: the profile that says whether the GPU or the host sets the pace."""

from __future__ import annotations

import train_step
from torch import profiler

from dcl_search.graphs import preset_graph


def _ours() -> train_step.Ours:
    data = train_step._synthetic(256, 10, 32)
    ours = train_step.Ours(preset_graph("dml:2:tiny_cnn"), data, 64, "cpu")
    ours.run(1)  # warm-up, as main() does before profiling
    return ours


def test_profile_counts_no_device_time_where_no_kernel_ran_and_lists_the_step_ops() -> None:
    result = train_step._profile(_ours(), 2, "cpu")
    assert result["steps"] == 2
    assert result["wall_seconds_profiled"] > 0
    assert result["device_busy_seconds"] == result["device_busy_share"] == 0.0
    assert result["table"][-1].startswith("Self CPU time total:")
    assert any(line.lstrip().startswith("aten::") for line in result["table"])
    assert "error" not in result


def test_a_profiler_failure_is_reported_instead_of_losing_the_measurements(monkeypatch) -> None:
    ours = _ours()

    def broken(*args, **kwargs):
        raise RuntimeError("kineto is not available")

    monkeypatch.setattr(profiler, "profile", broken)
    assert train_step._profile(ours, 1, "cpu") == {"error": "RuntimeError: kineto is not available"}


def test_the_flags_add_each_variant_of_ours_they_ask_for() -> None:
    assert train_step._step_variants(False, False) == []
    assert train_step._step_variants(True, False) == [("ours_graphed", {"cuda_graph": "on"})]
    assert train_step._step_variants(False, True) == [("ours_streams", {"node_streams": "on"})]
    assert [name for name, _ in train_step._step_variants(True, True)] == [
        "ours_graphed",
        "ours_streams",
        "ours_graphed_streams",
    ]

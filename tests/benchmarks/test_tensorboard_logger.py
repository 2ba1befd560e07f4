"""benchmarks/tensorboard_logger.py: both loggers time the same results; the file says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorboard_logger as bench


def test_both_loggers_log_every_result_and_the_ratio_is_of_their_medians(tmp_path: Path) -> None:
    report = bench.main(["--results", "5", "--repeats", "3", "--out", str(tmp_path / "r.json")])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["ms_per_result"] == report["ms_per_result"]
    assert {len(v) for v in saved["all_ms_per_result"].values()} == {3}
    medians = saved["ms_per_result"]
    assert medians["ours"] == sorted(saved["all_ms_per_result"]["ours"])[1]
    assert saved["ratio_tune_to_ours"] == pytest.approx(medians["tune"] / medians["ours"])
    assert saved["results"] == 5 and saved["machine"]


def test_the_result_row_holds_the_numbers_a_digits_trial_reports() -> None:
    row = bench.epoch_result(4)
    assert row["training_iteration"] == row["epoch"] == row["trained_epochs"] == 4
    numbers = [k for k, v in row.items() if isinstance(v, (int, float)) and k != "config"]
    assert {"acc_node2", "loss_node0", "acc_ensemble", "done"} <= set(numbers)
    assert len(numbers) >= 25

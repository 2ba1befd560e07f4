"""The driver's cost of TensorBoard files per reported epoch: Ray Tune's logger against ours.

    python benchmarks/tensorboard_logger.py

Tune's ``TBXLoggerCallback`` writes each number of a result as its own event, each through
tensorboardX's multiprocessing queue, and forces the file to disk after every result; our
``TensorBoardLogger`` (dcl_search/search/_tensorboard.py) writes the same tags and steps as one
event per result. Both run on the driver, between a trial's report and its next epoch. The
two log the same results (a digits trial's row: 3 nodes, Tune's own keys), alternating,
several repetitions each, in one process; the script prints the median milliseconds per
result of each and their ratio.

Writes benchmarks/results/tensorboard_logger-cpu-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import default_path, device_name, write_report  # noqa: E402


def epoch_result(epoch: int) -> dict:
    """What a 3-node digits trial reports per epoch, Tune's own keys included."""
    now = time.time()
    return {
        **{f"acc_node{i}": 0.9 + i / 100 for i in range(3)},
        **{f"loss_node{i}": 0.3 - i / 100 for i in range(3)},
        "acc_ensemble": 0.95, "lr": 0.05, "epoch": epoch, "seconds": 0.12,
        "trained_epochs": epoch, "reused_epochs": 0, "teacher_seconds": 0.0,
        "started_at": now - 10, "reported_at": now, "num_nodes": 3, "sampled_nodes": 3,
        "graph_hash": "687fd43f23748cf7", "key": "5d2772505d277250", "node_id": "ab" * 28,
        # added by Tune
        "done": False, "training_iteration": epoch, "trial_id": "5d277250", "date": "2026-12-03",
        "timestamp": int(now), "time_this_iter_s": 0.13, "time_total_s": 0.13 * epoch,
        "pid": 1234, "hostname": "vm", "node_ip": "127.0.0.1", "time_since_restore": 1.0,
        "iterations_since_restore": epoch, "checkpoint_dir_name": None, "should_checkpoint": False,
        "config": {"n": 3, "m1": "tiny_cnn", "g01": "through"},
    }  # fmt: skip


class _Trial:
    """What the loggers read of Tune's ``Trial`` (a dict key: hashed by identity)."""

    def __init__(self, folder: str) -> None:
        self.local_path, self.evaluated_params, self.trial_id = folder, {"n": 3}, "x"

    def init_local_path(self) -> None:
        pass


def ms_per_result(logger, results: list[dict]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        trial = _Trial(folder)
        logger.log_trial_start(trial)
        started = time.perf_counter()
        for result in results:
            logger.log_trial_result(result["training_iteration"], trial, result)
        seconds = time.perf_counter() - started
        logger.log_trial_end(trial)
    return 1000 * seconds / len(results)


def main(argv: list[str] | None = None) -> dict:
    from ray.tune.logger import TBXLoggerCallback

    from dcl_search.search._tensorboard import TensorBoardLogger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200, help="results per repetition")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    results = [epoch_result(epoch) for epoch in range(1, args.results + 1)]
    loggers = {"tune": TBXLoggerCallback(), "ours": TensorBoardLogger()}
    times: dict[str, list[float]] = {name: [] for name in loggers}
    for _ in range(args.repeats):
        for name, logger in loggers.items():
            times[name].append(ms_per_result(logger, results))
    medians = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "ms_per_result": medians,
        "all_ms_per_result": times,
        "ratio_tune_to_ours": medians["tune"] / medians["ours"],
        "results": args.results,
        "repeats": args.repeats,
        "date": datetime.date.today().isoformat(),
        "machine": device_name("cpu"),
    }
    print(
        f"ms per result: Tune's logger {medians['tune']:.2f}, ours {medians['ours']:.2f}; "
        f"ratio {report['ratio_tune_to_ours']:.1f}x"
    )
    write_report(report, args.out or default_path("tensorboard_logger-cpu"))
    return report


if __name__ == "__main__":
    main()

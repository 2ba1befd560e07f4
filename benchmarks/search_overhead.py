"""Where a search's wall time goes: training vs the search machinery, for a 32-trial CPU search.

    python benchmarks/search_overhead.py              # the README's main job without re-evaluation
    python benchmarks/search_overhead.py --samples 8 --cifar100-images 5000 -- --epochs 4
                                                      # the same space on 32×32×3 images: longer epochs

Runs ``dcl-search search --dataset digits --samples 32`` (the demo space and recipe, 2 trials at
once on 2 cores) as a user does, then splits the slot time (wall × concurrent trials) with
the per-epoch stamps every trial reports:

- training: the epochs' own time (forward, backward, step, validation), trained epochs only;
- start-up: from the command's start to the first trial's start (imports, Ray, Tune, workers);
- teacher pre-training: frozen teachers trained once per search inside a trial's set-up
  (training work, so not counted as overhead);
- worker warm-up: the set-up of each worker process's first trial, paid once per worker and
  not per trial (it was 1.1-1.5 s while torch's optimizer imported ``torch._dynamo``);
- trial set-up: the rest of a trial's start to its first epoch (graph, models, data cache);
- per-epoch reporting: between epochs, beyond the epoch itself (checkpoint, store, Tune report);
- between trials: slots idle while Tune schedules the next trial;
- tail: slots idle after the last trial started, waiting for the longest trials (ASHA with
  few samples per slot; it shrinks as samples ≫ concurrency);
- wind-down: from the last report to the command's end (export, Ray shutdown).

Writes benchmarks/results/search_overhead-cpu[-cifar100]-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import default_path, device_name, write_report  # noqa: E402
from _synthetic import write_synthetic_cifar100  # noqa: E402


def _rows(run_dir: Path) -> list[list[dict]]:
    trials = []
    for path in sorted(run_dir.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            trials.append(rows)
    return trials


def _trained_here(rows: list[dict]) -> list[bool]:
    """Whether the trial trained each reported epoch itself (``trained_epochs`` grew against the
    row before). A graph that another trial already trained is replayed from the store for free,
    and its rows still carry the original epochs' seconds."""
    before = [0, *(row["trained_epochs"] for row in rows[:-1])]
    return [row["trained_epochs"] > b for b, row in zip(before, rows, strict=True)]


def _own_seconds(rows: list[dict]) -> list[float]:
    """Each row's ``seconds`` where this trial trained the epoch, else 0."""
    return [
        row["seconds"] if here else 0.0 for here, row in zip(_trained_here(rows), rows, strict=True)
    ]


def trained_epoch_seconds(trials: list[list[dict]]) -> list[float]:
    """The ``seconds`` of every epoch a trial trained itself."""
    return [
        row["seconds"]
        for rows in trials
        for here, row in zip(_trained_here(rows), rows, strict=True)
        if here
    ]


def _first_in_worker(trials: list[list[dict]]) -> list[bool]:
    """Whether each trial was its worker's first: the earliest start among the trials run by
    that process (Tune's ``pid`` in every result). Rows without a pid count as later trials."""
    firsts: dict[int, int] = {}
    for index, rows in enumerate(trials):
        pid = rows[0].get("pid")
        if pid is not None and (
            pid not in firsts or rows[0]["started_at"] < trials[firsts[pid]][0]["started_at"]
        ):
            firsts[pid] = index
    chosen = set(firsts.values())
    return [index in chosen for index in range(len(trials))]


def breakdown(trials: list[list[dict]], started: float, ended: float, slots: int) -> dict:
    first_start = min(rows[0]["started_at"] for rows in trials)
    last_report = max(rows[-1]["reported_at"] for rows in trials)
    wall = ended - started
    slot_time = wall * slots
    training = sum(trained_epoch_seconds(trials))
    teacher = [max(row.get("teacher_seconds", 0.0) for row in rows) for rows in trials]
    teachers = sum(teacher)
    own = [_own_seconds(rows) for rows in trials]
    setups = [
        rows[0]["reported_at"] - rows[0]["started_at"] - seconds[0] - pretraining
        for rows, seconds, pretraining in zip(trials, own, teacher, strict=True)
    ]
    warm_up = sum(
        setup for setup, first in zip(setups, _first_in_worker(trials), strict=True) if first
    )
    setup = sum(setups) - warm_up
    # a replayed row's interval is all reporting: nothing was trained in it
    reporting = sum(
        later["reported_at"] - earlier["reported_at"] - spent
        for rows, seconds in zip(trials, own, strict=True)
        for earlier, later, spent in zip(rows[:-1], rows[1:], seconds[1:], strict=True)
    )
    busy = sum(rows[-1]["reported_at"] - rows[0]["started_at"] for rows in trials)
    last_start = max(rows[0]["started_at"] for rows in trials)
    busy_after_last_start = sum(
        max(0.0, rows[-1]["reported_at"] - max(rows[0]["started_at"], last_start))
        for rows in trials
    )
    tail = (last_report - last_start) * slots - busy_after_last_start
    parts = {
        "training": training,
        "teacher pre-training": teachers,
        "start-up": (first_start - started) * slots,
        "worker warm-up": warm_up,
        "trial set-up": setup,
        "per-epoch reporting": reporting,
        "between trials": (last_report - first_start) * slots - busy - tail,
        "tail": tail,
        "wind-down": (ended - last_report) * slots,
    }
    shares = {name: value / slot_time for name, value in parts.items()}
    span = (last_report - first_start) * slots
    work = training + teachers
    return {
        "wall_seconds": wall,
        "slots": slots,
        "trials": len(trials),
        "epochs_reported": sum(len(rows) for rows in trials),
        "seconds": parts,
        "share_of_slot_time": shares,
        # slot-seconds outside training: the shares below also move with how long the epochs
        # that ASHA let run happened to be, so runs compare better on this
        "overhead_seconds": slot_time - work,
        "overhead_share": 1 - work / slot_time,
        "overhead_share_while_trials_run": 1 - work / span,
        # the per-trial machinery (set-up, reporting, scheduling) against slot time in use,
        # without the costs paid once per worker, which do not grow with the samples
        "per_trial_overhead_share": 1 - work / (span - tail - warm_up),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument(
        "--cifar100-images",
        type=int,
        default=0,
        help="search a synthetic CIFAR-100 of this many training images instead of digits "
        "(longer epochs: how the fixed costs' share shrinks)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "search_args", nargs=argparse.REMAINDER, help="after --: more dcl-search search options"
    )
    args = parser.parse_args(argv)
    extra = [a for a in args.search_args if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        data = ["--dataset", "digits"]
        if args.cifar100_images:
            folder = write_synthetic_cifar100(Path(tmp) / "data", args.cifar100_images)
            data = ["--dataset", "cifar100", "--data-dir", str(folder)]
        options = [*data, "--samples", str(args.samples), *extra]
        command = [
            sys.executable, "-m", "dcl_search", "search", *options,
            "--storage", tmp, "--name", "run",
        ]  # fmt: skip
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        started = time.time()
        subprocess.run(command, check=True, cwd=tmp, env=env, capture_output=True, text=True)
        ended = time.time()
        run_dir = Path(tmp) / "run"
        settings = json.loads((run_dir / "search.json").read_text())
        slots = int(settings.get("concurrency") or os.cpu_count() or 1)
        report = breakdown(_rows(run_dir), started, ended, slots)
    report.update(
        {
            "date": datetime.date.today().isoformat(),
            "machine": device_name("cpu"),
            "command": " ".join(["dcl-search search", *options]).replace(tmp, "<tmp>"),
        }
    )
    for name, share in report["share_of_slot_time"].items():
        print(f"{name:<22} {report['seconds'][name]:7.1f} slot-s  {100 * share:5.1f}%")
    print(
        f"wall {report['wall_seconds']:.1f} s × {slots} slots; overhead {report['overhead_seconds']:.1f} slot-s, "
        f"{100 * report['overhead_share']:.0f}% "
        f"of all slot time, {100 * report['overhead_share_while_trials_run']:.0f}% while trials run, "
        f"{100 * report['per_trial_overhead_share']:.0f}% per trial (set-up after a worker's first, "
        "reporting, scheduling)"
    )
    name = "search_overhead-cpu" + ("-cifar100" if args.cifar100_images else "")
    write_report(report, args.out or default_path(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whether a search's machinery per trial grows with the number of trials (a search is thousands).

    python benchmarks/search_scaling.py                  # 1,000 one-epoch trials on digits
    python benchmarks/search_scaling.py --samples 2000 --windows 8

Runs ``dcl-search search --dataset digits --samples N --epochs 1 --sampler random`` as a user
does: one epoch, so that each trial is mostly machinery (set-up, report, scheduling, Tune's
and Optuna's bookkeeping), and random sampling, so that every window of trials draws its
graphs from the same distribution (TPE would move towards slower, better graphs). The trials,
in the order they started and without each worker's first (its warm-up), are cut into equal
windows; for each window it prints the slot-seconds per trial (wall × concurrent trials /
trials), the training per trial (the trained epochs' own seconds) and the rest, the machinery
per trial.
The ratio of the last window's machinery per trial to the first's is 1 when nothing in the
search costs more per trial as trials accumulate.

It also samples the driver's CPU time (Linux's /proc) every 0.5 s against the trials ended
so far, and prints the driver's CPU milliseconds per trial in the same number of windows of
ended trials: Tune's loop, the searcher and the callbacks, which on a small machine take
their CPU from the trials. Less noisy than the slot time, which a shared machine moves.

Writes benchmarks/results/search_scaling-cpu-<date>.json.
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
from search_overhead import _first_in_worker, _own_seconds, _rows  # noqa: E402


def windows(trials: list[list[dict]], slots: int, count: int) -> list[dict]:
    """Per window of ``count`` equal windows of trials (by start, each worker's first left out,
    the remainder of the division dropped): slot-seconds, training and machinery per trial.
    A window spans from its first trial's start to the next window's first start (the last
    one: to the last report)."""
    firsts = _first_in_worker(trials)
    later = sorted(
        (rows for rows, first in zip(trials, firsts, strict=True) if not first),
        key=lambda rows: rows[0]["started_at"],
    )
    size = len(later) // count
    last_report = max(rows[-1]["reported_at"] for rows in trials)
    out = []
    for begin in range(0, size * count, size):
        group = later[begin : begin + size]
        end = later[begin + size][0]["started_at"] if begin + size < len(later) else last_report
        slot_seconds = (end - group[0][0]["started_at"]) * slots
        training = sum(
            sum(_own_seconds(rows)) + max(row.get("teacher_seconds", 0.0) for row in rows)
            for rows in group
        )
        out.append(
            {
                "trials": f"{begin + 1}-{begin + size}",
                "slot_seconds_per_trial": slot_seconds / size,
                "training_per_trial": training / size,
                "machinery_per_trial": (slot_seconds - training) / size,
                "reused_graphs": sum(1 for rows in group if rows[-1]["trained_epochs"] == 0),
            }
        )
    return out


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time of a process (all its threads) so far, from Linux's /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_sampling_the_driver(
    command: list[str], cwd: str, env: dict[str, str], ledger: Path
) -> list[tuple[int, float]]:
    """Runs the search; every 0.5 s notes (trials ended, the driver's CPU seconds so far)."""
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
        while process.poll() is None:
            cpu = _cpu_seconds(process.pid)
            ended = ledger.read_bytes().count(b"\n") if ledger.exists() else 0
            if cpu is not None:
                samples.append((ended, cpu))
            time.sleep(0.5)
        if process.returncode:
            log.seek(0)
            sys.exit(f"the search failed:\n{log.read().decode()[-3000:]}")
    return samples


def driver_cpu_per_trial(samples: list[tuple[int, float]], total: int, count: int) -> list[float]:
    """The driver's CPU seconds per ended trial in ``count`` equal windows of the ``total``
    trials (by the order they ended): the work of Tune's loop, the searcher and our callbacks
    on the driver, which competes with the trials for the cores."""
    size = total // count
    # from the first end (the start-up before it is no trial's), then every size ends
    boundaries = [1, *range(size, size * count + 1, size)]
    at = []
    for boundary in boundaries:
        reached = [cpu for ended, cpu in samples if ended >= boundary]
        at.append(reached[0] if reached else samples[-1][1])
    return [
        (cpu_b - cpu_a) / (b - a)
        for a, b, cpu_a, cpu_b in zip(boundaries, boundaries[1:], at, at[1:], strict=False)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=5, help="windows of trials (default 5)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "search_args", nargs=argparse.REMAINDER, help="after --: more dcl-search search options"
    )
    args = parser.parse_args(argv)
    if args.windows < 2 or args.samples < 10 * args.windows:
        parser.error("--windows takes 2 or more, and --samples at least 10 per window")
    extra = [a for a in args.search_args if a != "--"]
    options = [
        "--dataset", "digits", "--samples", str(args.samples), "--epochs", "1",
        "--sampler", "random", "--status-every", "0", *extra,
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "dcl_search", "search", *options,
            "--storage", tmp, "--name", "run",
        ]  # fmt: skip
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        print(f"running {args.samples} trials ...", file=sys.stderr)
        started = time.time()
        run_dir = Path(tmp) / "run"
        samples = _run_sampling_the_driver(command, tmp, env, run_dir / "ended_trials.jsonl")
        wall = time.time() - started
        driver = driver_cpu_per_trial(samples, args.samples, args.windows) if samples else []
        settings = json.loads((run_dir / "search.json").read_text())
        slots = int(settings.get("concurrency") or os.cpu_count() or 1)
        rows = windows(_rows(run_dir), slots, args.windows)
        state = max(run_dir.glob("experiment_state-*.json"), key=lambda p: p.name)
        state_mb = state.stat().st_size / 1e6
    first, last = rows[0]["machinery_per_trial"], rows[-1]["machinery_per_trial"]
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": device_name("cpu"),
        "command": " ".join(["dcl-search search", *options]),
        "wall_seconds": wall,
        "slots": slots,
        "windows": rows,
        "machinery_last_over_first": last / first,
        # by the order trials ended (the windows above are by the order they started)
        "driver_cpu_seconds_per_trial": driver,
        "driver_cpu_last_over_first": driver[-1] / driver[0] if driver else None,
        "experiment_state_mb": state_mb,
    }
    print(f"{'trials':>11} {'slot-s/trial':>12} {'training':>9} {'machinery':>10} {'reused':>7}")
    for row in rows:
        print(
            f"{row['trials']:>11} {row['slot_seconds_per_trial']:12.3f} "
            f"{row['training_per_trial']:9.3f} {row['machinery_per_trial']:10.3f} "
            f"{row['reused_graphs']:7d}"
        )
    print(
        f"wall {wall:.0f} s × {slots} slots; machinery per trial, last window / first: "
        f"{last / first:.2f}×; Tune's experiment state {state_mb:.1f} MB"
    )
    if driver:
        print(
            "driver CPU ms per trial, by windows of ended trials: "
            + ", ".join(f"{1000 * seconds:.1f}" for seconds in driver)
            + f"; last / first: {driver[-1] / driver[0]:.2f}×"
        )
    write_report(report, args.out or default_path("search_scaling-cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Finished trial-epochs per hour on one device with 1, 2, 4 and 8 trials packed onto it.

    python benchmarks/packing.py --device cuda          # 16 trials per packing, 2 epochs each
    python benchmarks/packing.py --device cpu --packings 1,2 --trials 2 --epochs 1 --images 2000
    python benchmarks/packing.py --device cuda --compile reduce-overhead   # trials compiled

For each packing p, runs ``dcl-search search --dataset cifar100`` as a user does, over 2-node
ResNet-32 graphs (every gate, no frozen nodes; the paper recipe with ``--epochs E``), with p
trials at once on the device:

- ``--device cuda``: ``--gpus-per-trial 1/p --cpus-per-trial max(1, cores // p) --concurrency p``
  (Ray's fractional GPUs);
- ``--device cpu``: ``--cpus-per-trial max(1, cores // p) --gpus-per-trial 0 --concurrency p``;
  a packing above the core count is skipped.

``--grace-period E`` keeps ASHA from stopping any trial early, so every trial trains every epoch
and the packings do the same work. Without ``--data-dir`` a synthetic CIFAR-100 (random pixels
and labels, ``--images`` training and 1,000 test images) is written once in torchvision's
on-disk format; training speed does not depend on what the pixels show.

From the trials' per-epoch rows: trained epochs (epochs replayed from the graph store for a
graph that an earlier trial already trained cost nothing and are not counted), trial-epochs per
hour over the whole command and while trials run (first trial's start to last report; without
Ray's start-up and the export), the median epoch time, and each packing's rate against packing
1. Recommends the packing with the most trial-epochs per hour while trials run as the default
``--gpus-per-trial`` (``--cpus-per-trial`` on the CPU).

``--compile MODE`` trains with the recipe's ``compile: MODE`` (each worker's first trial of a
graph shape also compiles it), ``--cuda-graph`` with its ``cuda_graph: on`` (one CUDA graph for
each trial's whole step): whether packing and CUDA graphs add up.

Writes benchmarks/results/packing-<device>[-compile-<mode>][-cuda-graph]-<date>.json (``--out``
names another file, or another folder for that name).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, default_path, device_name, write_report  # noqa: E402
from _synthetic import TEST_IMAGES, write_synthetic_cifar100  # noqa: E402
from search_overhead import _rows, trained_epoch_seconds  # noqa: E402

from dcl_search.training import Recipe, load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "trainers" / "paper.yaml"
STDERR_TAIL = 40  # lines of a failed command's stderr shown

SPACE_YAML = """\
# benchmarks/packing.py: 2-node ResNet-32 graphs, the paper's gates, no frozen nodes
nodes: 2
target_model: resnet32
models: [resnet32]
edge_gates: [through, cutoff, linear, correct]
self_loop_gates: [through, cutoff, linear, correct]
allow_frozen: false
hyperparameters: {}
"""


def graphed_trials(trials: list[list[dict]]) -> int:
    """Trials whose steps replayed a CUDA graph (a trial whose step could not be captured
    trains on eagerly and reports 0 graphed steps)."""
    return sum(max(row.get("graphed_steps", 0) for row in rows) > 0 for rows in trials)


def throughput(trials: list[list[dict]], wall_seconds: float) -> dict[str, Any]:
    """Trained trial-epochs per hour over the command's wall time and while trials run."""
    if not trials:
        raise ValueError("no trial reported an epoch")
    seconds = trained_epoch_seconds(trials)
    first_start = min(rows[0]["started_at"] for rows in trials)
    last_report = max(rows[-1]["reported_at"] for rows in trials)
    running = last_report - first_start
    return {
        "trials_reported": len(trials),
        "epochs_reported": sum(len(rows) for rows in trials),
        "trained_epochs": len(seconds),
        "wall_seconds": wall_seconds,
        "running_seconds": running,
        "epochs_per_hour_wall": 3600 * len(seconds) / wall_seconds,
        "epochs_per_hour_running": 3600 * len(seconds) / running if running > 0 else 0.0,
        "median_epoch_seconds": statistics.median(seconds) if seconds else None,
    }


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Each packing's rates over the first (smallest) packing's: packing 1 when it was run."""
    base = results[0]
    for result in results:
        for rate in ("wall", "running"):
            key = f"epochs_per_hour_{rate}"
            result[f"ratio_{rate}"] = result[key] / base[key] if base[key] else None


def resources(device: str, packing: int, cores: int) -> dict[str, float | int]:
    """What a trial reserves at this packing: the device shared p ways, the cores likewise."""
    cpus = max(1, cores // packing)
    gpus = round(1 / packing, 4) if device == "cuda" else 0.0  # Ray counts GPUs to 1e-4
    return {"cpus_per_trial": cpus, "gpus_per_trial": gpus, "concurrency": packing}


def write_recipe(path: Path, compile_mode: str, cuda_graph: str = "off") -> Path:
    """The paper's recipe with ``compile`` and ``cuda_graph`` set: the trials' training as a
    user would ask for it."""
    recipe = dataclasses.replace(load_recipe(RECIPE), compile=compile_mode, cuda_graph=cuda_graph)
    path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return path


def search_command(
    data_dir: Path, space: Path, storage: Path, packing: int, trials: int, epochs: int,
    used: dict[str, float | int], recipe: Path = RECIPE,
) -> list[str]:  # fmt: skip
    return [
        sys.executable, "-m", "dcl_search", "search",
        "--dataset", "cifar100", "--data-dir", str(data_dir),
        "--space", str(space), "--recipe", str(recipe),
        "--epochs", str(epochs), "--samples", str(trials),
        # grace period = epochs: ASHA stops no trial, every packing trains the same epochs
        "--grace-period", str(epochs), "--sampler", "random",
        "--cpus-per-trial", str(used["cpus_per_trial"]),
        "--gpus-per-trial", str(used["gpus_per_trial"]),
        "--concurrency", str(used["concurrency"]),
        "--storage", str(storage), "--name", f"packing-{packing}",
    ]  # fmt: skip


def run_packing(command: list[str], cwd: Path) -> float:
    """Runs the search; returns its wall seconds. On failure prints stderr's tail and exits."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    started = time.time()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.time() - started
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-STDERR_TAIL:])
        print(f"failed (exit {done.returncode}): {' '.join(command)}\n{tail}", file=sys.stderr)
        sys.exit(done.returncode or 1)
    return wall


def recommend(results: list[dict[str, Any]], device: str) -> dict[str, Any]:
    best = max(results, key=lambda r: r["epochs_per_hour_running"])
    flag = "--gpus-per-trial" if device == "cuda" else "--cpus-per-trial"
    value = best["gpus_per_trial"] if device == "cuda" else best["cpus_per_trial"]
    return {
        "packing": best["packing"],
        "flag": flag,
        "value": value,
        "epochs_per_hour_running": best["epochs_per_hour_running"],
        "ratio_running": best["ratio_running"],
    }


def print_table(results: list[dict[str, Any]], device: str) -> None:
    share = "gpus/trial" if device == "cuda" else "cpus/trial"
    base = results[0]["packing"]
    header = (
        f"{'packing':>7} {share:>10} {'trials':>6} {'trained ep':>10} {'wall s':>8} "
        f"{'ep/h wall':>9} {'ep/h run':>9} {f'vs {base} run':>8} {'median ep s':>11}"
    )
    print(header)
    for r in results:
        value = r["gpus_per_trial"] if device == "cuda" else r["cpus_per_trial"]
        median = f"{r['median_epoch_seconds']:.2f}" if r["median_epoch_seconds"] else "-"
        print(
            f"{r['packing']:>7} {value:>10g} {r['trials_reported']:>6} {r['trained_epochs']:>10} "
            f"{r['wall_seconds']:>8.1f} {r['epochs_per_hour_wall']:>9.0f} "
            f"{r['epochs_per_hour_running']:>9.0f} {r['ratio_running']:>7.2f}x {median:>11}"
        )


def _packings(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--packings takes e.g. 1,2,4,8, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"--packings must be integers >= 1, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--packings", type=_packings, default=[1, 2, 4, 8])
    parser.add_argument(
        "--trials", type=int, default=None, help="trials per packing (default 2 × max packing)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    parser.add_argument(
        "--images", type=int, default=10000, help="synthetic training images (default 10000)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="a real CIFAR-100 (default: synthetic)"
    )
    parser.add_argument(
        "--compile",
        choices=typing.get_args(typing.get_type_hints(Recipe)["compile"]),
        default="off",
        help="the recipe's compile for every trial (default off, as trainers/paper.yaml)",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="every trial with the recipe's cuda_graph: on (one CUDA graph for the whole step)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a .json file, or a folder for the default name (default: benchmarks/results/)",
    )
    args = parser.parse_args(argv)
    if args.cuda_graph and args.compile != "off":
        parser.error("--cuda-graph and --compile cannot be combined (the recipe refuses both)")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda, but torch sees no GPU", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    trials = args.trials or 2 * max(args.packings)
    packings = []
    for packing in args.packings:
        if args.device == "cpu" and packing > cores:
            print(f"packing {packing}: skipped, more trials than the {cores} cores at 1 core each")
        else:
            packings.append(packing)
    if not packings:
        print("no packing left to run", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="packing-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = args.data_dir.resolve() if args.data_dir else None
        if data_dir is None:
            data_dir = write_synthetic_cifar100(tmp / "data", args.images)
        space = tmp / "space.yaml"
        space.write_text(SPACE_YAML)
        recipe = write_recipe(tmp / "recipe.yaml", args.compile, "on" if args.cuda_graph else "off")
        for packing in packings:
            used = resources(args.device, packing, cores)
            flags = ", ".join(f"--{key.replace('_', '-')} {value:g}" for key, value in used.items())
            print(f"packing {packing}: {trials} trials × {args.epochs} epochs, {flags}", flush=True)
            command = search_command(
                data_dir, space, tmp / "runs", packing, trials, args.epochs, used, recipe
            )
            wall = run_packing(command, cwd=tmp)
            rows = _rows(tmp / "runs" / f"packing-{packing}")
            result = throughput(rows, wall)
            if args.cuda_graph:
                result["trials_graphed"] = graphed_trials(rows)
                print(f"packing {packing}: {result['trials_graphed']} trials replayed CUDA graphs")
            results.append({"packing": packing, **used, "trials": trials, **result})
    add_ratios(results)
    recommendation = recommend(results, args.device)
    print_table(results, args.device)
    print(
        f"recommended: {recommendation['flag']} {recommendation['value']:g} "
        f"({recommendation['packing']} trial{'s' if recommendation['packing'] > 1 else ''} at once: "
        f"{recommendation['epochs_per_hour_running']:.0f} trial-epochs/h while trials run, "
        f"{recommendation['ratio_running']:.2f}x packing {results[0]['packing']})"
    )
    today = datetime.date.today().isoformat()
    report = {
        "date": today,
        "machine": device_name(args.device),
        "torch": torch.__version__,
        "ray": importlib.metadata.version("ray"),
        "settings": {
            "device": args.device,
            "cores": cores,
            "packings": packings,
            "trials_per_packing": trials,
            "epochs": args.epochs,
            "data": str(args.data_dir) if args.data_dir else "synthetic cifar100",
            "train_images": None if args.data_dir else args.images,
            "test_images": None if args.data_dir else TEST_IMAGES,
            "space": SPACE_YAML,
            "recipe": "trainers/paper.yaml",
            "compile": args.compile,
            "cuda_graph": args.cuda_graph,
            "sampler": "random",
            "grace_period": args.epochs,
        },
        "results": results,
        "recommendation": recommendation,
    }
    label = f"packing-{args.device}" + ("" if args.compile == "off" else f"-compile-{args.compile}")
    label += "-cuda-graph" if args.cuda_graph else ""
    if args.out is not None and args.out.suffix == ".json":
        write_report(report, args.out)
    else:
        write_report(report, default_path(label, args.out or RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Images per second of one collaborative training step: ours vs the original loop's structure.

    python benchmarks/train_step.py --device cpu          # tiny models, ~2 min on 2 cores
    python benchmarks/train_step.py --device cuda         # the paper's 3-node graph

Synthetic CIFAR-shaped data (32×32×3, 100 classes; no download). Both implementations train
the same graph with the same batch size, alternating, ``--reps`` times each after a warm-up;
the ratio is of the medians. Images/s counts every image once, whatever the number of nodes.
Writes benchmarks/results/<device>[-compile-<mode>][-cuda-graph][-node-streams][-<graph>]-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import typing
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import device_name, write_report  # noqa: E402
from _traffic import ByteCounter  # noqa: E402
from reference_loop import ReferenceLoop  # noqa: E402

from dcl_search.datasets import DatasetSplits, ImageSet  # noqa: E402
from dcl_search.graphs import preset_graph  # noqa: E402
from dcl_search.models import build_model  # noqa: E402
from dcl_search.training import (  # noqa: E402
    CollaborativeTrainer,
    Recipe,
    precision_name,
    recipe_from_dict,
)

DEFAULT_GRAPH = {"cuda": "dml:resnet32,resnet110,resnet32", "cpu": "dml:3:tiny_cnn"}
# dense bf16 throughput reached in practice and memory bandwidth (DESIGN.md, "Performance")
DEVICE_PEAKS = {"H100": (790e12, 3.35e12), "H200": (790e12, 4.8e12)}


def _synthetic(n: int, classes: int, size: int, seed: int = 0) -> DatasetSplits:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    small = ImageSet(images[:256], labels[:256])
    return DatasetSplits(
        "synthetic", ImageSet(images, labels), small, small, classes, (0.5,) * 3, (0.25,) * 3
    )


def _train_flops_per_image(graph, classes: int, size: int) -> float:
    """3 × forward FLOPs (forward + backward) summed over the nodes, counted by torch."""
    total = 0.0
    for node in graph.nodes:
        model = build_model(graph.nodes[node]["model"], classes, 3).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        total += 3 * counter.get_total_flops()
    return total


# the variants of ours that --cuda-graph and --node-streams add: name → recipe keys changed
STEP_VARIANTS = {
    "ours_graphed": {"cuda_graph": "on"},
    "ours_streams": {"node_streams": "on"},
    "ours_graphed_streams": {"cuda_graph": "on", "node_streams": "on"},
}


def _step_variants(cuda_graph: bool, node_streams: bool) -> list[tuple[str, dict[str, str]]]:
    """(name, recipe keys) of each variant of ours that the two flags ask for."""
    asked = {"cuda_graph": cuda_graph, "node_streams": node_streams}
    return [(name, how) for name, how in STEP_VARIANTS.items() if all(asked[k] for k in how)]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Ours:
    """The project's trainer on the paper's recipe, with ``how`` (recipe keys such as
    ``compile``, ``precision``, ``cuda_graph``, ``node_streams``) changed."""

    def __init__(
        self, graph, data: DatasetSplits, batch: int, device: str, name: str = "ours", **how: str
    ) -> None:
        self.name = name
        recipe = recipe_from_dict({"epochs": 1000, "batch_size": batch, **how})
        self.trainer = CollaborativeTrainer(graph, data, recipe, device=device)
        self.precision = precision_name(self.trainer.autocast_dtype)

    def run(self, steps: int) -> int:
        self.trainer.steps_per_epoch = steps
        self.trainer._train_one_epoch()  # the trainer's own epoch loop, evaluation excluded
        return steps * self.trainer.recipe.batch_size


class Reference:
    name = "reference"

    def __init__(self, graph, data: DatasetSplits, batch: int, device: str, workers: int) -> None:
        self.loop = ReferenceLoop(
            graph,
            data.train.images,
            data.train.labels,
            data.num_classes,
            data.mean,
            data.std,
            batch,
            device,
            workers=workers,
        )

    def run(self, steps: int) -> int:
        return self.loop.run_steps(steps)


def _measure(impl, steps: int, device: str) -> tuple[float, int | None, int | None]:
    """Images/s of ``steps`` steps (one epoch of ours), the peak of GPU memory during them and
    what stays allocated after them (equal across epochs unless something leaks)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    images = impl.run(steps)
    _sync(device)
    seconds = time.perf_counter() - start
    if device != "cuda":
        return images / seconds, None, None
    return images / seconds, torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()


def _bytes_per_image(ours: Ours) -> float:
    """Memory traffic of one training step of ours, op by op (benchmarks/_traffic.py), per image."""
    with ByteCounter() as counter:
        images = ours.run(1)
    return counter.total / images


def _profile(ours: Ours, steps: int, device: str) -> dict[str, typing.Any]:
    """Where a step of ours spends its time on a GPU: torch's profiler over ``steps`` steps.

    The device's busy time over the wall time says whether the GPU or the host (Python, kernel
    launches) sets the pace; the table lists the operators by their own device time. A profiler
    that fails on this torch is reported, not fatal: it explains a result, it is not one."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            _sync(device)
            start = time.perf_counter()
            ours.run(steps)
            _sync(device)
            wall = time.perf_counter() - start
        averages = prof.key_averages()
        # kernels and copies have no child events: their self time is the device's busy time
        busy_us = sum(e.self_device_time_total for e in averages if e.device_type.name == "CUDA")
        table = averages.table(
            sort_by="self_device_time_total", row_limit=25, max_name_column_width=60
        )
    except Exception as error:  # noqa: BLE001  # any profiler failure: keep the benchmark's result
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "steps": steps,
        "wall_seconds_profiled": wall,
        "device_busy_seconds": busy_us / 1e6,
        "device_busy_share": busy_us / 1e6 / wall,
        "table": table.splitlines(),
    }


def _evaluation_share(trainer: CollaborativeTrainer, train_rate: float, device: str) -> float:
    """Validation time over training time for one epoch, with the default 10% validation split
    (1 validation image per 9 training images), in the trainer's large no-grad batches."""
    trainer.evaluate("val")  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(3):
        trainer.evaluate("val")
    _sync(device)
    eval_rate = 3 * len(trainer.data.val) / (time.perf_counter() - start)
    return train_rate / eval_rate / 9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--graph",
        default=None,
        help="preset spec (default: paper 3-node on cuda, dml:3:tiny_cnn on cpu)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per measurement (default 200 cuda, 30 cpu)"
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers of the reference"
    )
    parser.add_argument(
        "--compile",
        default="off",
        choices=typing.get_args(typing.get_type_hints(Recipe)["compile"]),
        help="also time ours with the recipe's compile in this torch.compile mode "
        "(ours_compiled; compiled during the warm-up)",
    )
    parser.add_argument(
        "--also-fp32",
        action="store_true",
        help="also time ours with precision: fp32 (ours_fp32), to see what the recipe's "
        "precision: auto gains where it picks bf16 (CUDA, AMX CPUs)",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="also time ours with the recipe's cuda_graph: on (ours_graphed: one CUDA graph for "
        "the whole step; on the CPU it equals ours)",
    )
    parser.add_argument(
        "--node-streams",
        action="store_true",
        help="also time ours with the recipe's node_streams: on (ours_streams: a CUDA stream per "
        "node), and with --cuda-graph both together (ours_graphed_streams)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    device = args.device
    steps = args.steps or (200 if device == "cuda" else 30)
    spec = args.graph or DEFAULT_GRAPH[device]
    graph = preset_graph(spec)
    data = _synthetic(max(steps * args.batch, 50 * args.batch), args.classes, 32)
    impls = [
        Ours(graph, data, args.batch, device),
        Reference(graph, data, args.batch, device, args.workers),
    ]
    if args.compile != "off":
        impls.append(Ours(graph, data, args.batch, device, "ours_compiled", compile=args.compile))
    if args.also_fp32:
        impls.append(Ours(graph, data, args.batch, device, "ours_fp32", precision="fp32"))
    for name, how in _step_variants(args.cuda_graph, args.node_streams):
        impls.append(Ours(graph, data, args.batch, device, name, **how))
    results = {}
    for impl in impls:  # warm-up: kernels, allocator, DataLoader workers, compilation
        start = time.perf_counter()
        impl.run(max(3, steps // 10))
        _sync(device)
        results[impl.name] = {
            "warmup_seconds": time.perf_counter() - start,
            "images_per_s": [],
            "peak_memory_bytes": [],
            "allocated_after_bytes": [],
        }
    for rep in range(args.reps):
        for impl in impls:
            rate, peak, after = _measure(impl, steps, device)
            results[impl.name]["images_per_s"].append(round(rate, 1))
            results[impl.name]["peak_memory_bytes"].append(peak)
            results[impl.name]["allocated_after_bytes"].append(after)
            print(f"rep {rep + 1}/{args.reps} {impl.name:20s} {rate:10.1f} images/s", flush=True)
    flops = _train_flops_per_image(graph, args.classes, 32)
    for entry in results.values():
        entry["median_images_per_s"] = statistics.median(entry["images_per_s"])
        entry["tflops"] = entry["median_images_per_s"] * flops / 1e12
    ratio = results["ours"]["median_images_per_s"] / results["reference"]["median_images_per_s"]
    eval_share = _evaluation_share(impls[0].trainer, results["ours"]["median_images_per_s"], device)
    variants = [impl for impl in impls if impl.name in STEP_VARIANTS]
    profiles = {
        impl.name: _profile(impl, min(steps, 10), device)
        for impl in (impls[0], *variants)
        if device == "cuda"
    }
    traffic = _bytes_per_image(impls[0])
    bandwidth = results["ours"]["median_images_per_s"] * traffic
    after = results["ours"]["allocated_after_bytes"]
    name = device_name(device)
    peak = next((v for k, v in DEVICE_PEAKS.items() if k in name), None)
    report = {
        "device": name,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "graph": spec,
        "compile": args.compile,
        "ours_precision": impls[0].precision,  # what the recipe's precision: auto chose here
        "batch": args.batch,
        "steps": steps,
        "reps": args.reps,
        "classes": args.classes,
        "train_gflop_per_image": flops / 1e9,
        "results": results,
        "ratio_of_medians": ratio,
        "medians_over_reference": {
            key: entry["median_images_per_s"] / results["reference"]["median_images_per_s"]
            for key, entry in results.items()
        },
        "cuda_graph": args.cuda_graph,
        "node_streams": args.node_streams,
        "compiled_over_ours": (
            results["ours_compiled"]["median_images_per_s"] / results["ours"]["median_images_per_s"]
            if "ours_compiled" in results
            else None
        ),
        "ours_over_fp32": (
            results["ours"]["median_images_per_s"] / results["ours_fp32"]["median_images_per_s"]
            if "ours_fp32" in results
            else None
        ),
        "share_of_bf16_peak": results["ours"]["tflops"] * 1e12 / peak[0] if peak else None,
        # op-by-op traffic model (each op reads its inputs and writes its outputs once)
        "ours_bytes_per_image": traffic,
        "ours_bytes_per_s": bandwidth,
        "share_of_memory_bandwidth": bandwidth / peak[1] if peak else None,
        # allocated after epoch k minus after the first measured epoch: > 0 means a leak
        "ours_memory_growth_bytes": after[-1] - after[0] if after[0] is not None else None,
        "evaluation_share_of_epoch": eval_share,
        "ours_profile": profiles.get("ours"),
        "variant_profiles": {name: p for name, p in profiles.items() if name != "ours"},
        # steps replayed as one CUDA graph by each variant with cuda_graph: on
        "graphed_steps": {
            impl.name: impl.trainer.graphed_steps
            for impl in variants
            if impl.trainer.recipe.cuda_graph == "on"
        },
    }
    print(
        f"\n{name}, torch {torch.__version__}, graph {spec}, batch {args.batch}, {args.reps} reps of {steps} steps"
        + ("" if args.compile == "off" else f", ours compiled ({args.compile})")
        + f"; ours in {impls[0].precision} (precision: auto)"
    )
    for key, entry in results.items():
        print(
            f"{key:20s} median {entry['median_images_per_s']:10.1f} images/s, {entry['tflops']:.4f} TFLOP/s"
        )
    print(f"ratio of medians (ours / reference): {ratio:.2f}x")
    if report["compiled_over_ours"] is not None:
        compile_seconds = (
            results["ours_compiled"]["warmup_seconds"] - results["ours"]["warmup_seconds"]
        )
        print(
            f"compiled ({args.compile}) / ours: {report['compiled_over_ours']:.2f}x, "
            f"after about {compile_seconds:.0f} s of compiling"
        )
    for impl in variants:
        rate = results[impl.name]["median_images_per_s"]
        print(
            f"{impl.name} ({', '.join(f'{k}: {v}' for k, v in STEP_VARIANTS[impl.name].items())}) "
            f"/ reference: "
            f"{report['medians_over_reference'][impl.name]:.2f}x, "
            f"/ ours: {rate / results['ours']['median_images_per_s']:.2f}x"
        )
    if report["ours_over_fp32"] is not None:
        print(f"ours ({impls[0].precision}) / ours in fp32: {report['ours_over_fp32']:.2f}x")
    print(
        f"ours moves {traffic / 1e6:.1f} MB per image by the op-by-op model: {bandwidth / 1e9:.1f} GB/s"
    )
    if report["share_of_bf16_peak"] is not None:
        print(f"ours reaches {100 * report['share_of_bf16_peak']:.2f}% of the device's bf16 peak")
        print(f"and {100 * report['share_of_memory_bandwidth']:.1f}% of its memory bandwidth")
    if report["ours_memory_growth_bytes"] is not None:
        print(
            f"GPU memory allocated after each epoch of ours: {[a // 2**20 for a in after]} MiB "
            f"(growth {report['ours_memory_growth_bytes'] / 2**20:.1f} MiB)"
        )
    print(f"validation (10% of the data) costs {100 * eval_share:.1f}% of a training epoch")
    for name, profile in profiles.items():
        if "error" in profile:
            print(f"profiler failed on {name}: {profile['error']}")
            continue
        if name == "ours":  # the variants' tables are in the JSON
            print("\n".join(profile["table"]))
        print(
            f"profiled {profile['steps']} steps of {name}: the GPU was busy "
            f"{profile['device_busy_seconds']:.3f} s of {profile['wall_seconds_profiled']:.3f} s "
            f"({100 * profile['device_busy_share']:.0f}%)"
        )
    label = device if args.compile == "off" else f"{device}-compile-{args.compile}"
    label += "-cuda-graph" if args.cuda_graph else ""
    label += "-node-streams" if args.node_streams else ""
    if spec != DEFAULT_GRAPH[device]:  # another graph's run does not replace the default's
        label += "-" + "".join(c if c.isalnum() else "_" for c in spec)
    write_report(report, Path(args.out) / f"{label}-{report['date']}.json")


if __name__ == "__main__":
    main()

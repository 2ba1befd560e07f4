"""Collaborative-learning methods side by side on the embedded digits, clean and with label noise.

    python benchmarks/methods_digits.py                   # ~5 min on 2 CPU cores

Every method trains node 0 = ``tiny_cnn_fc`` (TinyCNN with Fang & Lin's three-FC dropout
classifier, so every intra-model option applies) with the demo recipe (trainers/demo.yaml,
30 epochs), 3 seeds each, at 0% and 40% uniform label noise redrawn every epoch (Fang & Lin's
protocol). Reported: node 0's test accuracy after the last epoch (mean ± std over seeds), its
validation accuracy, and the peak training memory relative to ``independent``.

"best combination" is chosen per noise level among three combinations of intra-model losses
(the paper's best for VGG-16, its best for ResNet-18, all four) by mean *validation* accuracy;
the test set only reports. Memory is measured, not estimated from FLOPs: bytes of the tensors
autograd saves for the backward pass during one training step (the activations), plus weights,
gradients and momentum (3 × parameter bytes) of every trained module, auxiliary ones included.

Writes benchmarks/results/methods_digits-<date>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import default_path, device_name, write_report  # noqa: E402

from dcl_search.datasets import load_dataset
from dcl_search.graphs import FORMAT, VERSION, graph_from_node_link
from dcl_search.training import CollaborativeTrainer, LabelNoise, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TARGET = "tiny_cnn_fc"


def _graph(nodes: list[dict], edges: list[tuple[int, int, str]]):
    data = {
        "format": FORMAT,
        "version": VERSION,
        "nodes": [{"id": i, **n} for i, n in enumerate(nodes)],
        "edges": [{"source": s, "target": t, "gate": g} for s, t, g in edges],
    }
    return graph_from_node_link(data, "methods_digits")


def _single(**options) -> dict:
    return {"nodes": [{"model": TARGET, **options}], "edges": [(0, 0, "through")]}


METHODS: dict[str, dict] = {
    "independent": _single(),
    "DML (2 nodes)": {
        "nodes": [{"model": TARGET}, {"model": TARGET}],
        "edges": [(0, 0, "through"), (1, 1, "through"), (0, 1, "through"), (1, 0, "through")],
    },
    # hand-picked, not searched: the paper's gate types on three different networks
    "DCL graph (3 nodes)": {
        "nodes": [{"model": TARGET}, {"model": "tiny_cnn"}, {"model": "mlp"}],
        "edges": [
            (0, 0, "through"),
            (1, 0, "linear"),
            (2, 0, "correct"),
            (1, 1, "through"),
            (0, 1, "through"),
            (2, 2, "through"),
            (0, 2, "linear"),
        ],
    },
    "multi-head (4 heads, split layer2)": _single(heads=4),
    "out": _single(intra=["out"]),
    "mid": _single(intra=["mid"]),
    "pull_push": _single(intra=["pull_push"]),
    "kernel": _single(intra=["kernel"]),
}
COMBINATIONS: dict[str, dict] = {
    "out+mid+pull_push": _single(intra=["out", "mid", "pull_push"]),
    "mid+pull_push+kernel": _single(intra=["mid", "pull_push", "kernel"]),
    "out+mid+pull_push+kernel": _single(intra=["out", "mid", "pull_push", "kernel"]),
}


def training_memory(trainer: CollaborativeTrainer) -> int:
    """Bytes of one training step: saved activations + weights, gradients and momentum."""
    x = trainer.normalize(trainer.train_x[: trainer.recipe.batch_size], trainer.channels_last)
    y = trainer.clean_train_y[: trainer.recipe.batch_size]
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trainer.train_step(x, y)
    parameters = sum(
        p.numel() * p.element_size()
        for n, m in enumerate(trainer.models)
        if not trainer.frozen[n]
        for p in m.parameters()
    )
    return sum(storages.values()) + 3 * parameters


def run(spec: dict, noise: float, seed: int, data, recipe) -> dict:
    graph = _graph(spec["nodes"], spec["edges"])
    trainer = CollaborativeTrainer(
        graph, data, recipe, seed=seed, label_noise=LabelNoise(noise, "epoch")
    )
    start = time.perf_counter()
    metrics = list(trainer.train_epochs())
    return {
        "val": metrics[-1].val_acc[0],
        "test": trainer.evaluate("test").nodes[0],
        "seconds": time.perf_counter() - start,
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo recipe's")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_dataset("digits")
    recipe = load_recipe(ROOT / "trainers/demo.yaml").with_epochs(args.epochs)
    seeds = list(range(args.seeds))
    everything = {**METHODS, **COMBINATIONS}

    memory = {}
    for name, spec in everything.items():
        trainer = CollaborativeTrainer(_graph(spec["nodes"], spec["edges"]), data, recipe)
        memory[name] = training_memory(trainer)

    results: dict[str, dict[str, list[dict]]] = {}
    started = time.perf_counter()
    for noise in args.noise:
        for name, spec in everything.items():
            runs = [run(spec, noise, seed, data, recipe) for seed in seeds]
            results.setdefault(f"{noise:g}", {})[name] = runs
            test = _mean_std([r["test"] for r in runs])
            print(
                f"noise {noise:.0%}  {name:<36} test {100 * test[0]:5.1f} ± {100 * test[1]:.1f}"
                f"  ({sum(r['seconds'] for r in runs):.0f} s)",
                flush=True,
            )

    best = {}
    for noise, by_method in results.items():
        val = {n: statistics.mean(r["val"] for r in by_method[n]) for n in COMBINATIONS}
        best[noise] = max(val, key=val.get)

    header = (
        ["method"] + [f"test acc. {float(n):.0%} noise" for n in results] + ["memory vs indep."]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = list(METHODS) + ["best combination"]
    for row in rows:
        cells = [row]
        for noise, by_method in results.items():
            name = best[noise] if row == "best combination" else row
            mean, std = _mean_std([r["test"] for r in by_method[name]])
            label = f" ({name})" if row == "best combination" else ""
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}{label}")
        name = row if row != "best combination" else best[next(iter(results))]
        cells.append(f"{memory[name] / memory['independent']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print()
    print(table)

    today = datetime.date.today().isoformat()
    report = {
        "date": today,
        "machine": device_name("cpu"),
        "torch": torch.__version__,
        "recipe": recipe.to_dict(),
        "seeds": seeds,
        "memory_bytes": memory,
        "best_combination_by_val": best,
        "results": results,
        "table": table,
        "wall_seconds": time.perf_counter() - started,
    }
    print(f"\n{report['wall_seconds']:.0f} s")
    write_report(report, args.out or default_path("methods_digits"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

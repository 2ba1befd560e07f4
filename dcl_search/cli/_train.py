"""``dcl-search train GRAPH``: train one knowledge-transfer graph and write its run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcl_search._words import counted
from dcl_search.cli._common import accuracy_table, add_data_options, at_least, load_recipe_option

HELP = "train one graph (a JSON file or a preset: independent, kd, dml:3, ...)"

#: recipe keys that change only how a CUDA device runs the step → what happens elsewhere instead
CUDA_ONLY = {
    "cuda_graph": "each step runs eagerly",
    "node_streams": "the nodes run one after another",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help=HELP, description=HELP)
    parser.add_argument(
        "graph",
        help="graph JSON file, or preset: independent[:MODEL], kd[:STUDENT,TEACHER], dml:M[:MODEL], dml:MODEL,MODEL,...",
    )
    add_data_options(parser)
    parser.add_argument(
        "--recipe",
        default=None,
        help="recipe YAML file or name under trainers/ (default: demo for digits, paper otherwise)",
    )
    parser.add_argument(
        "--epochs",
        type=at_least(1),
        default=None,
        help="override the recipe's epochs (the schedule and linear gates follow)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of initialisation, batches and augmentation (default 0)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--out",
        default=None,
        help="run folder (default results/train/<dataset>-<graph hash>-seed<seed>); an unfinished run there is resumed",
    )
    parser.add_argument(
        "--cache-dir",
        default="results/pretrained",
        help="where pre-trained frozen teachers are cached (default results/pretrained)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dcl_search.datasets import load_dataset
    from dcl_search.graphs import graph_hash, resolve_graph
    from dcl_search.training import (
        LabelNoise,
        autocast_dtype,
        precision_name,
        resolve_device,
        resolve_frozen_checkpoints,
        train_run,
    )

    device = resolve_device(args.device)  # before a frozen teacher's pre-training, not after
    graph = resolve_graph(args.graph)
    recipe, recipe_path = load_recipe_option(args.recipe, args.dataset, args.epochs)
    noise = LabelNoise(args.label_noise, args.label_noise_mode)
    data = load_dataset(args.dataset, args.data_dir, val_fraction=args.val_fraction)
    out = Path(args.out or f"results/train/{args.dataset}-{graph_hash(graph)}-seed{args.seed}")
    graph_file = Path(args.graph)
    graph = resolve_frozen_checkpoints(
        graph,
        data,
        recipe,
        cache_dir=Path(args.cache_dir),
        device=args.device,
        label_noise=noise,
        graph_dir=graph_file.parent if graph_file.is_file() else None,
        log=lambda text: print(text, file=sys.stderr),
    )
    print(
        f"training {graph.number_of_nodes()}-node graph {graph_hash(graph)} on {args.dataset} "
        f"({len(data.train)} train / {len(data.val)} val / {len(data.test)} test) with {recipe_path}, "
        f"{counted(recipe.epochs, 'epoch')}, seed {args.seed}, device {args.device} in "
        f"{precision_name(autocast_dtype(recipe.precision, device))}; writing {out}",
        file=sys.stderr,
    )
    if recipe.compile != "off":
        print(
            f"compile: {recipe.compile}: the first epoch also compiles the training step "
            "(seconds to minutes once per model and shape; cached on this machine)",
            file=sys.stderr,
        )
    for key, instead in CUDA_ONLY.items():
        if getattr(recipe, key) == "on" and device.type != "cuda":
            print(f"{key}: on applies to CUDA devices; on {args.device} {instead}", file=sys.stderr)
    bars: list[tqdm] = []  # made once the resumed epoch is known, so messages keep their own line

    def on_start(trainer) -> None:
        if trainer.epoch >= recipe.epochs:
            print(f"{out} has finished all {recipe.epochs} epochs already", file=sys.stderr)
            return
        if trainer.epoch:
            print(f"resuming {out} after epoch {trainer.epoch}", file=sys.stderr)
        bars.append(
            tqdm(
                total=recipe.epochs,
                initial=trainer.epoch,
                unit="epoch",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5,
            )
        )

    def on_epoch(metrics) -> None:
        bars[0].update(1)
        bars[0].set_postfix(
            acc_node0=f"{100 * metrics.val_acc[0]:.2f}%",
            ensemble=f"{100 * metrics.val_acc_ensemble:.2f}%",
        )

    try:
        result = train_run(
            graph,
            data,
            recipe,
            out,
            device=args.device,
            seed=args.seed,
            label_noise=noise,
            on_epoch=on_epoch,
            on_start=on_start,
        )
    finally:
        for bar in bars:
            bar.close()
    print(accuracy_table(graph, result.val, result.test).to_string(float_format="%.2f"))
    print(
        f"wrote {out}/ (graph.json, metrics.csv, summary.json, weights/) in {result.summary['wall_time_s']:.1f} s of training"
    )
    return 0

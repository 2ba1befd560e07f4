"""``dcl-search reeval RUN`` and ``dcl-search transfer GRAPH``: multi-seed training vs baselines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcl_search._words import counted
from dcl_search.cli._common import (
    add_data_options,
    add_status_every,
    at_least,
    load_recipe_option,
)

REEVAL_HELP = "re-train the best graphs of a search with several seeds against the baselines"
TRANSFER_HELP = "train found graphs on another dataset with several seeds against the baselines"


def add_parser(commands: argparse._SubParsersAction) -> None:
    from dcl_search.cli._search import add_resources

    parser = commands.add_parser("reeval", help=REEVAL_HELP, description=REEVAL_HELP)
    parser.add_argument("run", help="search folder, e.g. results/<name>")
    parser.add_argument("--top", type=at_least(1), default=3, help="graphs to re-train (default 3)")
    parser.add_argument("--seeds", type=at_least(1), default=3, help="seeds per graph (default 3)")
    add_status_every(parser, "run")
    add_resources(parser, "run")
    parser.set_defaults(handler=run_reeval)

    parser = commands.add_parser("transfer", help=TRANSFER_HELP, description=TRANSFER_HELP)
    parser.add_argument(
        "graphs",
        nargs="+",
        metavar="GRAPH",
        help="graph JSON files (e.g. exported by a search on another dataset)",
    )
    add_data_options(parser)
    parser.add_argument(
        "--recipe", default=None, help="recipe (default: demo for digits, paper otherwise)"
    )
    parser.add_argument(
        "--epochs", type=at_least(1), default=None, help="override the recipe's epochs"
    )
    parser.add_argument("--seeds", type=at_least(1), default=3, help="seeds per graph (default 3)")
    parser.add_argument(
        "--out", default=None, help="output folder (default results/transfer-<dataset>)"
    )
    add_status_every(parser, "run")
    add_resources(parser, "run")
    parser.set_defaults(handler=run_transfer)


def _finish(runs, out: Path) -> None:
    from dcl_search.search import format_summary, summarize

    table = summarize(runs)
    runs.to_csv(out / "runs.csv", index=False)
    table.to_csv(out / "summary.csv", index=False)
    print(format_summary(table))
    print(f"(validation ranks; test is reported only. Per-run rows: {out / 'runs.csv'})")


def reevaluate_run(
    run_dir: Path,
    top: int,
    seeds: int,
    *,
    cpus: float = 1.0,
    gpus: float | None = None,
    address: str | None = None,
    status_every: float = 60.0,
) -> None:
    from dcl_search.search import (
        Candidate,
        SearchError,
        SearchSettings,
        baselines,
        init_ray,
        top_graphs,
        train_candidates,
    )

    settings = SearchSettings.load(run_dir)
    best = top_graphs(run_dir, top)
    if not best:
        raise SearchError(f"{run_dir}: no trial of this search has finished an epoch yet")
    candidates = [
        Candidate(f"rank{i}-{row.graph_hash[:8]}", graph) for i, (graph, row) in enumerate(best, 1)
    ]
    candidates += baselines(best[0][0])
    print(
        f"re-evaluating {counted(len(best), 'graph')} and "
        f"{counted(len(candidates) - len(best), 'baseline')} with {counted(seeds, 'seed')} each "
        f"({counted(len(candidates) * seeds, 'run')} of {counted(settings.recipe.epochs, 'epoch')})",
        file=sys.stderr,
    )
    gpus = init_ray(address, cpus_per_task=cpus, gpus_per_task=gpus, noun="run")
    out = run_dir / "reeval"
    runs = train_candidates(
        candidates,
        settings.data,
        settings.recipe,
        seeds,
        out,
        cpus_per_run=cpus,
        gpus_per_run=gpus,
        status_every=status_every,
    )
    _finish(runs, out)


def run_reeval(args: argparse.Namespace) -> int:
    reevaluate_run(
        Path(args.run),
        args.top,
        args.seeds,
        cpus=args.cpus_per_run,
        gpus=args.gpus_per_run,
        address=args.address,
        status_every=args.status_every,
    )
    return 0


def run_transfer(args: argparse.Namespace) -> int:
    from dcl_search.graphs import read_graph
    from dcl_search.search import (
        Candidate,
        DataSpec,
        baselines,
        cached_data,
        init_ray,
        train_candidates,
        without_checkpoints,
    )
    from dcl_search.training import LabelNoise

    graphs = [(Path(path).stem, without_checkpoints(read_graph(path))) for path in args.graphs]
    recipe, _ = load_recipe_option(args.recipe, args.dataset, args.epochs)
    spec = DataSpec(
        args.dataset,
        args.data_dir,
        args.val_fraction,
        LabelNoise(args.label_noise, args.label_noise_mode),
    )
    cached_data(spec)  # a missing dataset fails here, in one line, before Ray starts
    candidates = [Candidate(label, graph) for label, graph in graphs] + baselines(graphs[0][1])
    out = Path(args.out or f"results/transfer-{args.dataset}")
    print(
        f"transferring {counted(len(graphs), 'graph')} to {args.dataset}: "
        f"{counted(len(candidates) * args.seeds, 'run')}",
        file=sys.stderr,
    )
    gpus = init_ray(
        args.address, cpus_per_task=args.cpus_per_run, gpus_per_task=args.gpus_per_run, noun="run"
    )
    runs = train_candidates(
        candidates,
        spec,
        recipe,
        args.seeds,
        out,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=gpus,
        status_every=args.status_every,
    )
    _finish(runs, out)
    return 0

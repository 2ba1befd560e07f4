"""``dcl-search search``: ASHA over knowledge-transfer graphs; export; optional re-evaluation."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dcl_search._errors import DCLSearchError
from dcl_search._plugins import plugin_specs
from dcl_search._ray import DEFAULT_GPU_SHARE, TASKS_PER_GPU, stop_ray
from dcl_search._words import counted
from dcl_search.cli._common import (
    add_data_options,
    add_status_every,
    at_least,
    load_recipe_option,
    share,
)

if TYPE_CHECKING:
    from dcl_search.datasets._check import DatasetCheck
    from dcl_search.search import SearchSettings

HELP = "search the graph that makes node 0 most accurate (ASHA on Ray Tune, Optuna sampling)"


def _nodes(text: str) -> int | tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return (int(low), int(high)) if high else int(low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--nodes takes N or MIN-MAX, got {text!r}") from None


def add_resources(parser: argparse.ArgumentParser, noun: str = "trial") -> None:
    parser.add_argument(
        f"--cpus-per-{noun}",
        type=share(zero_allowed=False),
        default=1.0,
        help=f"CPUs reserved per {noun} (default 1)",
    )
    parser.add_argument(
        f"--gpus-per-{noun}",
        type=share(zero_allowed=True),
        default=None,
        help=f"GPUs per {noun}; fractions pack several on one GPU, e.g. 0.25 (default: "
        f"{DEFAULT_GPU_SHARE:g}, {TASKS_PER_GPU} on each GPU, where the Ray cluster has GPUs; "
        "else 0: CPU)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="join an existing Ray cluster: auto or HOST:PORT (default: start Ray here)",
    )


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("search", help=HELP, description=HELP)
    parser.add_argument(
        "--space",
        default=None,
        help="search space YAML or name under search_spaces/ (default: demo for digits, paper otherwise)",
    )
    add_data_options(parser)
    parser.add_argument(
        "--recipe", default=None, help="training recipe (default: demo for digits, paper otherwise)"
    )
    parser.add_argument(
        "--epochs",
        type=at_least(1),
        default=None,
        help="max epochs of a trial (overrides the recipe)",
    )
    parser.add_argument(
        "--nodes",
        type=_nodes,
        default=None,
        help="number of nodes M, or a range MIN-MAX (overrides the space)",
    )
    parser.add_argument(
        "--samples", type=at_least(1), default=24, help="number of sampled graphs (default 24)"
    )
    parser.add_argument(
        "--sampler",
        choices=("tpe", "random"),
        default="tpe",
        help="Optuna sampler (random reproduces the paper; default tpe)",
    )
    parser.add_argument(
        "--grace-period",
        type=at_least(1),
        default=1,
        help="ASHA's minimum epochs before a trial may be stopped (default 1; the recipe's epochs "
        "stop none: export/rungs.csv then measures over every graph how well early epochs "
        "predict the last)",
    )
    parser.add_argument(
        "--reduction-factor",
        type=at_least(2),
        default=2,
        help="ASHA's reduction factor (default 2)",
    )
    parser.add_argument(
        "--concurrency",
        type=at_least(1),
        default=None,
        help="trials running at once (default: CPUs / cpus-per-trial)",
    )
    parser.add_argument(
        "--max-failures",
        type=at_least(0),
        default=2,
        help="retries of a failed trial from its last checkpoint (default 2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="training seed of every trial (default 0)"
    )
    add_status_every(parser, "trial")
    add_resources(parser)
    parser.add_argument(
        "--name", default=None, help="run name (default <dataset>-<space>-<date-time>)"
    )
    parser.add_argument(
        "--storage",
        default="results",
        help="folder (or shared path on a cluster) holding run folders (default results)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted search, e.g. results/<name>",
    )
    parser.add_argument("--top", type=at_least(1), default=5, help="graphs to export (default 5)")
    parser.add_argument(
        "--reeval-top",
        type=at_least(0),
        default=0,
        help="re-train the K best graphs with --seeds seeds against the baselines (default 0: skip)",
    )
    parser.add_argument(
        "--seeds", type=at_least(1), default=3, help="seeds per graph in re-evaluation (default 3)"
    )
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> SearchSettings:
    import os

    from dcl_search.search import SearchSettings, load_search_space
    from dcl_search.training import LabelNoise

    space_spec = args.space or ("demo" if args.dataset == "digits" else "paper")
    space = load_search_space(space_spec)
    if args.nodes is not None:
        space = space.with_nodes(args.nodes)
    recipe, _ = load_recipe_option(args.recipe, args.dataset, args.epochs)
    # where the trials share GPUs, run_search lowers it to what the GPUs hold
    concurrency = args.concurrency or max(1, int((os.cpu_count() or 1) // args.cpus_per_trial))
    name = args.name or f"{args.dataset}-{Path(space_spec).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return SearchSettings(
        name=name,
        storage=str(Path(args.storage).resolve()),
        space=space,
        recipe=recipe,
        dataset=args.dataset,
        data_dir=args.data_dir,
        val_fraction=args.val_fraction,
        label_noise=LabelNoise(args.label_noise, args.label_noise_mode),
        seed=args.seed,
        samples=args.samples,
        sampler=args.sampler,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,  # None: decided once Ray has started
        concurrency=concurrency,
        max_failures=args.max_failures,
        status_every=args.status_every,
    )


def report_search(run_dir: Path, top: int, seconds: float | None = None) -> None:
    from dcl_search.search import export_run, ranked, trial_table
    from dcl_search.search._fidelity import RUNGS_FILE, summarize_rungs_file
    from dcl_search.search._results import (
        STATUS_COMPLETE,
        STATUS_ERROR,
        STATUS_PRUNED,
        STATUS_UNFINISHED,
    )

    table = ranked(trial_table(run_dir))
    leaderboard, graphs = export_run(run_dir, top)
    reused = table[(table["trained_epochs"] == 0) & (table["reused_epochs"] > 0)]
    counts = table["status"].value_counts().to_dict()
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    unfinished = f", {counts[STATUS_UNFINISHED]} unfinished" if STATUS_UNFINISHED in counts else ""
    print(
        f"search {run_dir.name}: {counted(len(table), 'trial')}{took} "
        f"({counts.get(STATUS_COMPLETE, 0)} complete, {counts.get(STATUS_PRUNED, 0)} stopped early "
        f"by ASHA, {counts.get(STATUS_ERROR, 0)} failed{unfinished}); {len(reused)} reused an already trained graph; "
        f"{counted(int(table['reused_epochs'].sum()), 'epoch')} not trained again"
    )
    shown = table.head(top)[
        ["trial", "status", "graph_hash", "models", "epochs", "acc_node0", "acc_ensemble"]
    ].copy()
    shown[["acc_node0", "acc_ensemble"]] = 100 * shown[["acc_node0", "acc_ensemble"]]
    print(
        shown.rename(
            columns={"acc_node0": "val node0 %", "acc_ensemble": "val ensemble %"}
        ).to_string(index=False, float_format="%.2f")
    )
    print(f"exported {counted(len(graphs), 'graph')} (JSON + PNG) and {leaderboard}")
    line = summarize_rungs_file(run_dir, leaderboard.parent / RUNGS_FILE)
    if line:
        print(line)


# options that --resume takes as given; every other one is a setting stored in search.json
_NOT_SETTINGS = {"command", "handler", "resume", "address", "top", "reeval_top", "seeds"}


def _refuse_changed_settings(args: argparse.Namespace) -> None:
    """A resumed search keeps its stored settings (Tune cannot change them); an option that
    would change one is refused rather than silently ignored."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    defaults = vars(parser.parse_args(["search"]))
    changed = [
        f"--{name.replace('_', '-')}"
        for name, value in vars(args).items()
        if name not in _NOT_SETTINGS and name in defaults and value != defaults[name]
    ]
    if changed:
        raise DCLSearchError(
            f"--resume {args.resume} keeps the settings in its search.json; drop "
            f"{', '.join(changed)} (or start a new search under another --name)"
        )


def _refuse_moved(run_dir: str) -> None:
    """Tune's saved state, its searcher's and the driver's callbacks name the folder a search
    was made in: resumed elsewhere, it failed with Optuna's traceback once the first trial
    asked for a graph."""
    from dcl_search.search import SearchSettings

    made_in = SearchSettings.made_in(run_dir)
    if made_in.resolve() != Path(run_dir).resolve():
        raise DCLSearchError(
            f"--resume {run_dir}: this search was made in {made_in}, which Ray Tune's and "
            "Optuna's saved state name; move the folder back there to resume it"
        )


def _prepare(args: argparse.Namespace) -> SearchSettings:
    """The settings, checked before Ray starts: a mistake is one line at once."""
    from dcl_search.search import SearchSettings

    if args.resume:
        _refuse_changed_settings(args)
    settings = SearchSettings.load(args.resume) if args.resume else _settings(args)
    # stored, so that export, reeval and --resume load them without --plugin
    return dataclasses.replace(settings, plugins=tuple(plugin_specs()))


def _report_while_ray_stops(run_dir: Path, top: int, seconds: float | None) -> None:
    """Ray's shutdown mostly waits for its processes to end: the export is written meanwhile."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        reported = pool.submit(report_search, run_dir, top, seconds)
        stop_ray()
        reported.result()


def _announce(settings: SearchSettings, *, resumed: bool, done: bool) -> None:
    """The search's first line, once it is sure to begin."""
    if done:
        print(
            f"search {settings.run_dir} has finished all {counted(settings.samples, 'trial')} "
            "already; nothing to resume",
            file=sys.stderr,
        )
    elif resumed:
        print(
            f"resuming search {settings.run_dir} ({settings.samples} samples in all)",
            file=sys.stderr,
        )
    else:
        low, high = settings.space.nodes.min, settings.space.nodes.max
        nodes = counted(low, "node") if low == high else f"{low}-{high} nodes"
        print(
            f"search {settings.run_dir}: {counted(settings.samples, 'graph')} of {nodes} on "
            f"{settings.dataset}, ASHA to {counted(settings.recipe.epochs, 'epoch')}, "
            f"{settings.concurrency} at once"
            + (f", {settings.gpus_per_trial:g} GPU each" if settings.gpus_per_trial else ""),
            file=sys.stderr,
        )
    if settings.recipe.compile != "off":
        print(
            f"compile: {settings.recipe.compile}: a worker's first trial of each model also "
            "compiles it (cached for later trials and on each machine)",
            file=sys.stderr,
        )


def dataset_check(settings: SearchSettings, address: str | None) -> DatasetCheck | None:
    """Starts loading the search's dataset in a child process, unless nothing can be wrong
    with it here: a missing or malformed dataset is then one line, not a failed trial; the
    search waits for it before any trial, while Ray starts.

    None on a cluster (``address``), whose data lives on the workers, maybe other machines,
    and for a packaged dataset, which has no files of the user's: on two cores the child's
    imports delayed the trials' first epochs by 1.0-1.5 s (benchmarks/README.md, "Search
    overhead").
    """
    from dcl_search.datasets._check import DatasetCheck
    from dcl_search.datasets._registry import packaged_dataset

    data = settings.data
    if address or packaged_dataset(data.dataset):
        return None
    return DatasetCheck(data.dataset, data.data_dir, data.val_fraction)


def run(args: argparse.Namespace) -> int:
    from dcl_search.cli._reeval import reevaluate_run
    from dcl_search.search import (
        SearchError,
        SearchInterrupted,
        all_trials_failed,
        run_search,
        search_finished,
    )

    settings = _prepare(args)
    done = bool(args.resume) and search_finished(settings.run_dir, settings.samples)
    if args.resume and not done:
        _refuse_moved(args.resume)
    check = dataset_check(settings, args.address)

    def ready(resolved: SearchSettings) -> None:
        if check is not None:
            check.result()
        _announce(resolved, resumed=bool(args.resume), done=done)

    resume_hint = f"continue with: dcl-search search --resume {settings.run_dir}"
    try:
        if done:  # no need to start Ray: the export and --reeval-top still run
            ready(settings)
        seconds = (
            None
            if done
            else run_search(settings, resume=bool(args.resume), address=args.address, ready=ready)
        )
    except SearchInterrupted as stop:
        # Tune caught the Ctrl-C and saved its state: what ended so far is still exported
        try:
            _report_while_ray_stops(settings.run_dir, args.top, stop.seconds)
        except SearchError:  # no trial has reported yet
            pass
        print(
            f"interrupted after {stop.ended} of {counted(stop.samples, 'trial')}; {resume_hint}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:  # before Tune ran, or a second Ctrl-C
        print(f"interrupted; {resume_hint}", file=sys.stderr)
        return 130
    finally:
        if check is not None:
            check.cancel()
    if args.reeval_top:
        report_search(settings.run_dir, args.top, seconds)
    else:
        _report_while_ray_stops(settings.run_dir, args.top, seconds)
    failure = all_trials_failed(settings.run_dir)
    if failure:
        print(f"dcl-search: {failure}", file=sys.stderr)
        return 1
    if args.reeval_top:
        reevaluate_run(
            settings.run_dir,
            args.reeval_top,
            args.seeds,
            cpus=settings.cpus_per_trial,
            gpus=settings.gpus_per_trial,
            address=args.address,
            status_every=settings.status_every,
        )
    return 0

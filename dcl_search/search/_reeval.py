"""Re-evaluation: train chosen graphs and the baselines to the full budget with several seeds.

The search trains each graph once with one seed, and picks the luckiest; here every finalist
and the ``independent`` and ``dml`` baselines get the same recipe and the same fresh seeds
(``REEVAL_SEED_BASE + i``, never the search's seed), run as Ray tasks, and are ranked by
mean ± std of node 0's *validation* accuracy. Test accuracy is reported, never used to rank.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pandas as pd

from dcl_search._errors import DCLSearchError
from dcl_search._words import counted
from dcl_search.datasets import resolve_data_dir
from dcl_search.graphs import graph_hash, preset_graph
from dcl_search.search._data import DataSpec, cached_data
from dcl_search.search._results import describe_models
from dcl_search.training import Recipe, resolve_frozen_checkpoints, train_run

REEVAL_SEED_BASE = 1000


@dataclass(frozen=True)
class Candidate:
    label: str
    graph: nx.DiGraph


def baselines(graph: nx.DiGraph) -> list[Candidate]:
    """``independent`` of the target's model and ``dml`` with as many such nodes as ``graph``."""
    model = graph.nodes[0]["model"]
    size = max(2, graph.number_of_nodes())
    return [
        Candidate("independent", preset_graph(f"independent:{model}")),
        Candidate(f"dml:{size}", preset_graph(f"dml:{size}:{model}")),
    ]


def without_checkpoints(graph: nx.DiGraph) -> nx.DiGraph:
    """Frozen nodes re-trained on the new data: weights of another dataset don't fit its classes."""
    copy = graph.copy()
    for _, attrs in copy.nodes(data=True):
        attrs.pop("checkpoint", None)
    return copy


def _train_one(
    graph: nx.DiGraph,
    spec: DataSpec,
    recipe: Recipe,
    seed: int,
    out: str,
    cache_dir: str,
    device: str,
    threads: int,
) -> dict:
    import torch

    torch.set_num_threads(max(1, threads))
    data = cached_data(spec)
    graph = resolve_frozen_checkpoints(
        graph,
        data,
        recipe,
        cache_dir=Path(cache_dir),
        device=device,
        label_noise=spec.label_noise,
        log=lambda _: None,
    )
    result = train_run(
        graph, data, recipe, out, device=device, seed=seed, label_noise=spec.label_noise
    )
    return {
        "val_acc_node0": result.val.nodes[0],
        "test_acc_node0": result.test.nodes[0],
        "val_acc_ensemble": result.val.ensemble,
        "test_acc_ensemble": result.test.ensemble,
    }


def train_candidates(
    candidates: list[Candidate],
    spec: DataSpec,
    recipe: Recipe,
    seeds: int,
    out_dir: Path,
    *,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    status_every: float = 60.0,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> pd.DataFrame:
    """Trains every candidate with every seed (resumable: each run has its folder); one row per run.

    A line per finished run, and a status line of the running ones (from their
    ``metrics.csv``) whenever ``status_every`` seconds pass without one (0: never)."""
    import ray

    # the runs may work in another folder, on another machine: hand them absolute paths
    out_dir = Path(out_dir).resolve()
    spec = dataclasses.replace(spec, data_dir=str(resolve_data_dir(spec.data_dir).resolve()))
    device = "cuda" if gpus_per_run > 0 else "cpu"
    # max_retries covers crashed workers; an exception of ours is deterministic and not retried
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=2)(_train_one)
    pending = {}
    for candidate in candidates:
        for i in range(seeds):
            seed = REEVAL_SEED_BASE + i
            out = out_dir / candidate.label.replace(":", "-") / f"seed{seed}"
            ref = task.remote(
                candidate.graph,
                spec,
                recipe,
                seed,
                str(out),
                str(out_dir / "pretrained"),
                device,
                int(cpus_per_run),
            )
            pending[ref] = (candidate, seed, out)
    rows = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=status_every or None)
        if not done:
            log(_status_line(list(pending.values()), len(rows), recipe.epochs))
            continue
        candidate, seed, _ = pending.pop(done[0])
        metrics = _result(done[0], list(pending))
        log(
            f"  {candidate.label} seed {seed}: node 0 val {100 * metrics['val_acc_node0']:.2f}% "
            f"({len(rows) + 1}/{len(rows) + 1 + len(pending)})"
        )
        rows.append(
            {
                "label": candidate.label,
                "graph_hash": graph_hash(candidate.graph),
                "num_nodes": candidate.graph.number_of_nodes(),
                "models": describe_models(candidate.graph),
                "seed": seed,
                **metrics,
            }
        )
    return pd.DataFrame(rows)


def _status_line(running: list[tuple[Candidate, int, Path]], finished: int, epochs: int) -> str:
    """Where the unfinished runs are, read from the ``metrics.csv`` each writes per epoch (on a
    cluster without a shared folder, only this machine's runs show)."""
    shown = []
    for candidate, seed, out in running:
        try:
            last = pd.read_csv(out / "metrics.csv").iloc[-1]
        except (FileNotFoundError, pd.errors.EmptyDataError, IndexError):
            continue  # waiting for a worker, or before its first epoch
        shown.append(
            f"{candidate.label} seed {seed} {int(last['epoch'])}/{epochs} "
            f"{100 * last['acc_node0']:.2f}%"
        )
    total = finished + len(running)
    return (
        f"  ... {finished} of {counted(total, 'run')} done; running (epoch, node 0 val): "
        f"{', '.join(shown) or 'no epoch finished yet'}"
    )


def _result(ref, others: list) -> dict:
    """The task's metrics; a failed run cancels the rest and re-raises the user's error as is."""
    import ray
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as error:
        for other in others:
            ray.cancel(other, force=True)
        cause = getattr(error, "cause", None)
        if isinstance(cause, DCLSearchError):
            raise cause from None
        raise


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std per candidate, ranked by node 0's validation accuracy, with the gain over independent."""
    grouped = runs.groupby(["label", "graph_hash", "num_nodes", "models"], sort=False)
    table = grouped.agg(
        seeds=("seed", "count"),
        val_mean=("val_acc_node0", "mean"),
        val_std=("val_acc_node0", "std"),
        test_mean=("test_acc_node0", "mean"),
        test_std=("test_acc_node0", "std"),
    ).reset_index()
    table[["val_std", "test_std"]] = table[["val_std", "test_std"]].fillna(0.0)
    independent = table.loc[table["label"] == "independent", "val_mean"]
    table["val_gain"] = table["val_mean"] - (
        independent.iloc[0] if len(independent) else float("nan")
    )
    return table.sort_values("val_mean", ascending=False, kind="stable").reset_index(drop=True)


def format_summary(table: pd.DataFrame) -> str:
    """The comparison table users read: percentages, mean ± std over seeds."""
    shown = pd.DataFrame(
        {
            "graph": table["label"],
            "nodes": table["num_nodes"],
            "models": table["models"],
            "seeds": table["seeds"],
            "val node0 %": [
                f"{100 * m:.2f} ± {100 * s:.2f}"
                for m, s in zip(table["val_mean"], table["val_std"], strict=True)
            ],
            "test node0 %": [
                f"{100 * m:.2f} ± {100 * s:.2f}"
                for m, s in zip(table["test_mean"], table["test_std"], strict=True)
            ],
            "val gain vs independent": [f"{100 * g:+.2f}" for g in table["val_gain"]],
        }
    )
    shown.index = range(1, len(shown) + 1)
    return shown.to_string()

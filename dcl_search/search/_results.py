"""A search folder read back as a table: one row per trial, built with pandas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pandas as pd

from dcl_search.graphs import gate_of, read_graph
from dcl_search.search._settings import SearchError, SearchSettings
from dcl_search.search._state_backup import known_trials
from dcl_search.search._store import GRAPH, GraphStore, ended_results

STATUS_COMPLETE = "complete"  # trained to the recipe's last epoch
STATUS_PRUNED = "pruned"  # stopped early by ASHA
STATUS_ERROR = "error"
# still running, or stopped with the driver (Ctrl-C, a kill): --resume carries it on
STATUS_UNFINISHED = "unfinished"


def trial_results(trial_dir: Path) -> list[dict]:
    """Every result the trial reported, in order, from Tune's ``result.json``."""
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    results = []
    for line in path.read_text().splitlines():
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:  # empty, or the line Tune is writing while we read
            continue
    return results


def with_graph(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`trial_table` whose trial trained (or replayed) a stored graph."""
    return table[(table["status"] != STATUS_ERROR) & (table["key"] != "")]


def _options_tag(graph: nx.DiGraph, node: int) -> str:
    options = graph.nodes[node].get("options")
    if options is None:
        return ""
    parts = [f"h{options.heads}@{options.split}"] if options.heads > 1 else []
    return "[" + "+".join(parts + [name for name, _ in options.intra]) + "]"


def describe_models(graph: nx.DiGraph) -> str:
    """e.g. ``resnet32[h4@stage2+mid],resnet110*``: * marks a frozen node, [...] its options."""
    return ",".join(
        graph.nodes[n]["model"]
        + ("*" if graph.nodes[n].get("frozen") else "")
        + _options_tag(graph, n)
        for n in sorted(graph)
    )


def describe_gates(graph: nx.DiGraph) -> str:
    """Rows of the gate matrix (source-major), '|' between rows: compact and unambiguous."""
    nodes = sorted(graph)
    return "|".join(",".join(gate_of(graph, s, t) for t in nodes) for s in nodes)


def trial_table(run_dir: str | Path) -> pd.DataFrame:
    """One row per trial: id, graph hash and key, models, gates, epochs reached, accuracies, status."""
    run_dir = Path(run_dir)
    settings = SearchSettings.load(run_dir)
    rows = []
    known = known_trials(run_dir)
    ended = ended_results(run_dir)
    store = GraphStore.of_run(run_dir)
    # a trial that ended after Tune's last save before a killed driver is in the ledger only
    started = {p.name.removeprefix("trial_") for p in run_dir.glob("trial_*")}
    for trial_id in sorted(started | ended.keys()):
        trial_dir = run_dir / f"trial_{trial_id}"
        if known is not None and trial_id not in known and trial_id not in ended:
            continue  # started just before a killed driver's last save, then run again as another
        result = ended.get(trial_id) or next(reversed(trial_results(trial_dir)), {})
        errored = (trial_dir / "error.txt").exists() or (trial_dir / "error.pkl").exists()
        if not result and not errored:
            # started, then killed with the driver before its first epoch: Tune's saved state never
            # knew it, and the resumed search ran another sample in its place
            continue
        row = {"trial": trial_id}
        epochs = int(result.get("epoch", 0))
        if epochs >= settings.recipe.epochs:
            row["status"] = STATUS_COMPLETE
        elif errored:
            row["status"] = STATUS_ERROR
        else:  # ASHA's stops reach the driver's callbacks, which note every trial that ends
            row["status"] = STATUS_PRUNED if trial_id in ended else STATUS_UNFINISHED
        key = result.get("key")
        graph_file = store.folder(str(key)) / GRAPH
        graph = read_graph(graph_file) if key and graph_file.exists() else None
        row.update(
            {
                "graph_hash": result.get("graph_hash", ""),
                "key": key or "",
                "num_nodes": result.get("num_nodes", graph.number_of_nodes() if graph else 0),
                "models": describe_models(graph) if graph else "",
                "gates": describe_gates(graph) if graph else "",
                "epochs": epochs,
                "trained_epochs": result.get("trained_epochs", 0),
                "reused_epochs": result.get("reused_epochs", 0),
            }
        )
        row.update({k: v for k, v in result.items() if k.startswith("acc_")})
        rows.append(row)
    if not rows:
        raise SearchError(f"{run_dir}: the search has no trials yet")
    table = pd.DataFrame(rows)
    for column in ("acc_node0", "acc_ensemble"):  # absent when no trial finished an epoch
        if column not in table.columns:
            table[column] = float("nan")
    accuracy_columns = sorted(c for c in table.columns if c.startswith("acc_node")) + [
        "acc_ensemble"
    ]
    front = [
        "trial",
        "status",
        "graph_hash",
        "num_nodes",
        "models",
        "gates",
        "epochs",
        "trained_epochs",
        "reused_epochs",
    ]
    return table[front + [c for c in accuracy_columns if c in table.columns] + ["key"]]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Best first: deeper trained beats shallower (ASHA's rungs), then node 0's validation accuracy."""
    return table.sort_values(
        ["epochs", "acc_node0"], ascending=[False, False], kind="stable"
    ).reset_index(drop=True)


def top_graphs(run_dir: str | Path, k: int) -> list[tuple[nx.DiGraph, pd.Series]]:
    """The ``k`` best distinct graphs (by canonical key), each with its leaderboard row."""
    run_dir = Path(run_dir)
    best = ranked(trial_table(run_dir))
    best = with_graph(best).drop_duplicates("key")
    store = GraphStore.of_run(run_dir)
    return [(read_graph(store.folder(row.key) / GRAPH), row) for row in best.head(k).itertuples()]


def search_finished(run_dir: str | Path, samples: int) -> bool:
    """Whether ``samples`` trials have ended, none of them failed (``--resume`` would retry a
    failed one) and none is unfinished: then resuming has nothing left to do."""
    try:
        table = trial_table(run_dir)
    except SearchError:  # no trial has reported yet
        return False
    return len(table) >= samples and table["status"].isin([STATUS_COMPLETE, STATUS_PRUNED]).all()


def all_trials_failed(run_dir: str | Path) -> str | None:
    """None if any trial did not fail; else a line naming the first trial's error and its file."""
    run_dir = Path(run_dir)
    table = trial_table(run_dir)
    if table.empty or (table["status"] != STATUS_ERROR).any():
        return None
    first = table["trial"].iloc[0]
    error_file = run_dir / f"trial_{first}" / "error.txt"
    lines = error_file.read_text().strip().splitlines() if error_file.exists() else []
    reason = lines[-1].strip() if lines else "no error message was saved"
    reason = re.sub(r"^dcl_search\._errors\.\w+: ", "", reason)  # our errors say it all
    failed = "the only trial" if len(table) == 1 else f"all {len(table)} trials"
    return f"{failed} failed; trial {first}: {reason} (full traceback: {error_file})"

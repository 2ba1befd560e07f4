"""Export: the best graphs as graph JSON (the format ``train`` reads), pictures, leaderboard CSV,
and how well the early rungs predicted the last epoch."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dcl_search.graphs import draw_graph, write_graph
from dcl_search.search._fidelity import RUNGS_FILE, search_rung_fidelity
from dcl_search.search._results import ranked, top_graphs, trial_table

LEADERBOARD = "leaderboard.csv"
_RANK_FILE = re.compile(r"rank\d+-[0-9a-f]{16}\.(json|png)")


def export_run(
    run_dir: str | Path, top: int, out_dir: str | Path | None = None
) -> tuple[Path, list[Path]]:
    """Writes leaderboard.csv, rungs.csv and ``rank<i>-<hash>.json`` + ``.png`` for the ``top``
    best graphs."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "export"
    table = ranked(trial_table(run_dir))  # a folder that is no search fails before mkdir
    out.mkdir(parents=True, exist_ok=True)
    # an earlier export's ranks (another --top, or the ranking before the search went on)
    # would stand beside the new ones under the same rank numbers
    for old in out.iterdir():
        if _RANK_FILE.fullmatch(old.name):
            old.unlink()
    table.to_csv(out / LEADERBOARD, index=False)
    search_rung_fidelity(run_dir, table).to_csv(out / RUNGS_FILE, index=False)
    written = []
    for rank, (graph, row) in enumerate(top_graphs(run_dir, top), start=1):
        graph = graph.copy()
        graph.graph.update(
            {
                "name": f"{run_dir.name}-rank{rank}",
                "search": {
                    "run": run_dir.name,
                    "rank": rank,
                    "trial": row.trial,
                    "graph_hash": row.graph_hash,
                    "epochs": int(row.epochs),
                    "acc_node0": float(row.acc_node0),
                    "acc_ensemble": float(row.acc_ensemble) if pd.notna(row.acc_ensemble) else None,
                },
            }
        )
        path = write_graph(graph, out / f"rank{rank}-{row.graph_hash}.json")
        draw_graph(
            graph,
            path.with_suffix(".png"),
            title=f"rank {rank}: {100 * row.acc_node0:.2f}% (val, node 0)",
        )
        written.append(path)
    return out / LEADERBOARD, written

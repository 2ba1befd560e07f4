"""How well a graph's accuracy at an early ASHA rung predicts its accuracy at the last epoch.

ASHA ranks graphs after a few epochs, when the linear gates' weights are still near 0 and only
the schedule's high learning rate has run, so its early rungs may rank graphs differently than
the full budget does. The search's own curves measure by how much: for each rung, the rank
correlation (Spearman's ρ) between node 0's validation accuracy there and at the last epoch,
over the graphs that reached the last epoch, and the accuracy lost by keeping that rung's best.

Those graphs are ASHA's survivors, the best at every earlier rung, which narrows the range and
understates ρ; a search with ``--grace-period`` equal to the epochs stops none and measures it
over every graph.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from dcl_search._words import counted
from dcl_search.search._results import trial_table, with_graph
from dcl_search.search._settings import SearchSettings
from dcl_search.search._store import GraphStore

RUNGS_FILE = "rungs.csv"
# with fewer graphs a rank correlation takes a handful of values and says next to nothing
MIN_GRAPHS = 5


def accuracy_curves(run_dir: str | Path, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Node 0's validation accuracy per epoch (columns 1, 2, …), one row per distinct graph
    (index: its canonical key), from the graph store's rows: every trial of a graph adds to
    them, and they are saved before a trial reports a rung or its last epoch, so a killed driver
    loses none of an ended trial's epochs (Tune's result.json is only synced now and then).

    ``table`` is the search's :func:`trial_table`, if already at hand.
    """
    run_dir = Path(run_dir)
    table = trial_table(run_dir) if table is None else table
    store = GraphStore.of_run(run_dir)
    curves = {
        key: {int(row["epoch"]): float(row["acc_node0"]) for row in store.rows(key)}
        for key in with_graph(table)["key"].unique()
    }
    frame = pd.DataFrame.from_dict(curves, orient="index")
    return frame.reindex(columns=sorted(frame.columns))


def rung_fidelity(curves: pd.DataFrame, rungs: list[int], last: int) -> pd.DataFrame:
    """Per rung: the graphs that reached it; those of them that reached ``last``; Spearman's ρ
    between the latter's accuracies at the rung and at ``last`` (NaN below :data:`MIN_GRAPHS`
    graphs or when either side has no spread); and the regret of the rung's choice, the best
    final accuracy minus the final accuracy of the rung's best graph (the mean over graphs tied
    there), a fraction like the accuracies."""
    rows = []
    for rung in rungs:
        pair = curves.reindex(columns=[rung, last])  # a column no graph reached is all NaN
        both = pair.dropna()
        early, final = both[rung], both[last]
        rho, regret = float("nan"), float("nan")
        if len(both) >= MIN_GRAPHS:
            # Spearman's ρ is Pearson's r of the ranks; average ranks for ties
            rho = float(early.rank().corr(final.rank()))
        if len(both):
            regret = float(final.max() - final[early == early.max()].mean())
        reached = int(pair[rung].notna().sum())
        rows.append(
            {
                "epoch": rung,
                "reached": reached,
                "graphs": len(both),
                "spearman": rho,
                "regret": regret,
            }
        )
    return pd.DataFrame(rows, columns=["epoch", "reached", "graphs", "spearman", "regret"])


def fidelity_epochs(settings: SearchSettings) -> list[int]:
    """The search's ASHA rungs, and those of a grace period of 1 (the powers of the reduction
    factor): a search that stops nothing still measures them."""
    return sorted({*settings.rungs, *dataclasses.replace(settings, grace_period=1).rungs})


def search_rung_fidelity(run_dir: str | Path, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`rung_fidelity` of a search folder at its :func:`fidelity_epochs`."""
    settings = SearchSettings.load(run_dir)
    curves = accuracy_curves(run_dir, table)
    return rung_fidelity(curves, fidelity_epochs(settings), settings.recipe.epochs)


def describe_fidelity(fidelity: pd.DataFrame, last: int, where: Path | None = None) -> str | None:
    """One line for the search's summary (None when it has no rung below ``last``), naming the
    file ``where`` the measurement is kept; ``-`` marks an epoch where every graph had the
    same accuracy."""
    if fidelity.empty:
        return None
    graphs, started = int(fidelity["graphs"].max()), int(fidelity["reached"].max())
    if graphs < MIN_GRAPHS:
        return (
            f"early rungs against epoch {last}: {counted(graphs, 'graph')} reached it, "
            f"{MIN_GRAPHS} are needed to measure how well the rungs predict it; a search with "
            f"--grace-period {last} trains every graph to the end"
        )
    # graphs ASHA stopped have no last epoch: the rest were the best at every earlier rung
    survivors = f", ASHA's survivors of {started}" if started > graphs else ""
    parts = ", ".join(
        f"{row.epoch}: " + ("-" if pd.isna(row.spearman) else f"{row.spearman:+.2f}")
        for row in fidelity.itertuples()
    )
    return (
        f"early rungs against epoch {last} ({graphs} graphs reached it{survivors}): "
        f"Spearman ρ at epoch {parts}" + (f"; per epoch in {where}" if where else "")
    )


def summarize_rungs_file(run_dir: str | Path, rungs_file: Path) -> str | None:
    """:func:`describe_fidelity` of an exported ``rungs.csv`` of the search in ``run_dir``."""
    last = SearchSettings.load(run_dir).recipe.epochs
    return describe_fidelity(pd.read_csv(rungs_file), last, rungs_file)

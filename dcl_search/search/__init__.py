"""Searching knowledge-transfer graphs: spaces, the Ray Tune driver, results, export, re-evaluation."""

from __future__ import annotations

from dcl_search._lazy import lazy_exports
from dcl_search.search._data import DataSpec, cached_data
from dcl_search.search._driver import SearchInterrupted, init_ray, run_search
from dcl_search.search._export import export_run
from dcl_search.search._results import (
    all_trials_failed,
    ranked,
    search_finished,
    top_graphs,
    trial_table,
)
from dcl_search.search._settings import SearchError, SearchSettings
from dcl_search.search._space import (
    SEARCH_SPACES,
    NodeRange,
    NumericRange,
    SearchSpace,
    apply_hyperparameters,
    config_to_graph,
    load_search_space,
    search_space_from_dict,
    suggest_config,
)
from dcl_search.search._store import GraphStore

# re-evaluation trains in this process: torch, which a search's driver does not import
__getattr__, __dir__ = lazy_exports(
    __name__,
    dict.fromkeys(
        (
            "Candidate",
            "baselines",
            "format_summary",
            "summarize",
            "train_candidates",
            "without_checkpoints",
        ),
        "._reeval",
    ),
)

__all__ = [
    "SEARCH_SPACES",
    "Candidate",
    "DataSpec",
    "cached_data",
    "GraphStore",
    "NodeRange",
    "NumericRange",
    "SearchError",
    "SearchInterrupted",
    "SearchSettings",
    "SearchSpace",
    "all_trials_failed",
    "search_finished",
    "apply_hyperparameters",
    "baselines",
    "config_to_graph",
    "export_run",
    "format_summary",
    "init_ray",
    "load_search_space",
    "ranked",
    "run_search",
    "search_space_from_dict",
    "suggest_config",
    "summarize",
    "top_graphs",
    "train_candidates",
    "trial_table",
    "without_checkpoints",
]

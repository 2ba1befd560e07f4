"""One trial of a search, run by Ray Tune in a worker: sample → canonical graph → train or reuse.

Each trial trains the *canonical* graph of its sample (nodes that cannot reach the target are
dropped, non-target nodes in canonical order), so equivalent samples share one store entry
and the per-node metrics always refer to the same numbering.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import networkx as nx
import ray
from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS, DONE, EXPERIMENT_TAG, SHOULD_CHECKPOINT, TRIAL_ID

from dcl_search._errors import TrainingError
from dcl_search._ray import DEFAULT_GPU_SHARE
from dcl_search.graphs import canonical_graph, graph_hash, write_graph
from dcl_search.search._data import cached_data
from dcl_search.search._settings import SearchSettings
from dcl_search.search._space import apply_hyperparameters, config_to_graph
from dcl_search.search._store import GRAPH, GraphStore, ended_result
from dcl_search.training import Recipe

POLL_SECONDS = 0.5
PROGRESS = "progress.json"
# Between the epochs where ASHA may stop a trial, the trainer's checkpoint in the graph store is
# saved at most this often: short epochs then cost no disk writes, and a crash loses at most
# this much training (resume is exact: the epochs after Tune's last progress checkpoint are
# replayed from the store).
CHECKPOINT_SECONDS = 30.0
# what Tune adds to every result itself: the rest of a result is what the trial reported
TUNE_KEYS = {*AUTO_RESULT_KEYS, DONE, EXPERIMENT_TAG, SHOULD_CHECKPOINT, TRIAL_ID}


def asha_milestones(settings: SearchSettings) -> set[int]:
    """The epochs after which ASHA may stop a trial (its rungs) and the last one."""
    return {*settings.rungs, settings.recipe.epochs}


def trial_key(graph: nx.DiGraph, recipe: Recipe, settings: SearchSettings) -> str:
    """Identifies what a trial trains: equal keys give equal training runs."""
    parts = [
        graph_hash(graph),
        recipe.digest(),
        settings.dataset,
        settings.val_fraction,
        settings.seed,
        settings.label_noise.fraction,
        settings.label_noise.mode,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _reported_so_far() -> int:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / PROGRESS).read_text())["reported"]


class _Reporter:
    """Reports epochs to Tune in order, with a tiny checkpoint saying how many were reported.

    The checkpoint goes with the milestones' epochs only, whether trained or replayed: Tune
    keeps them all (see ``_new_tuner``), and each adds to the experiment state it saves. Every
    trial ends right after one, ASHA stopping trials only at its rungs, and a restored trial
    replays the epochs after its last one from the graph store.
    """

    def __init__(self, extra: dict[str, Any], milestones: set[int]) -> None:
        self.extra = extra
        self.milestones = milestones
        self.reported = _reported_so_far()
        self.trained = 0
        self.reused = 0

    def report(self, row: dict[str, Any], trained_here: bool) -> None:
        """Reports one epoch; at a milestone also Tune's record of how far this trial got."""
        self.reported += 1
        if trained_here:
            self.trained += 1
        else:
            self.reused += 1
        metrics = {
            **row,
            **self.extra,
            "trained_epochs": self.trained,
            "reused_epochs": self.reused,
            # wall-clock stamps for the overhead breakdown (benchmarks/search_overhead.py);
            # Tune's own "timestamp" has whole seconds only
            "reported_at": time.time(),
        }
        if self.reported not in self.milestones:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / PROGRESS).write_text(json.dumps({"reported": self.reported}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _train(
    settings: SearchSettings,
    graph: nx.DiGraph,
    recipe: Recipe,
    store: GraphStore,
    key: str,
    reporter: _Reporter,
) -> None:
    # torch, here and in run_trial: the driver imports this module for Tune to name the
    # trainable, and trains nothing (dcl_search._lazy)
    from dcl_search.training import CollaborativeTrainer, resolve_frozen_checkpoints

    data = cached_data(settings.data)
    started = time.perf_counter()
    graph = resolve_frozen_checkpoints(
        graph,
        data,
        recipe,
        cache_dir=settings.run_dir / "pretrained",
        device=settings.device,
        label_noise=settings.label_noise,
        log=lambda _: None,
    )
    # pre-training a frozen teacher (once per search) is training, not search overhead
    reporter.extra["teacher_seconds"] = time.perf_counter() - started
    trainer = CollaborativeTrainer(
        graph,
        data,
        recipe,
        device=settings.device,
        seed=settings.seed,
        label_noise=settings.label_noise,
    )
    if store.checkpoint(key).exists():
        trainer.load_checkpoint(store.checkpoint(key))
    for metrics in trainer.history[
        reporter.reported :
    ]:  # written by a trial killed before reporting
        reporter.report(metrics.row(), trained_here=False)
    saved_at = time.monotonic()
    for metrics in trainer.train_epochs():
        save = (
            metrics.epoch in reporter.milestones
            or time.monotonic() - saved_at >= CHECKPOINT_SECONDS
        )
        if save:
            # the store first: a trial stopped right after this report leaves its epochs there
            trainer.save_checkpoint(store.checkpoint(key))
            store.write_rows(key, [m.row() for m in trainer.history])
            saved_at = time.monotonic()
        if trainer.recipe.cuda_graph == "on":  # 0 on the CPU or where the capture failed
            reporter.extra["graphed_steps"] = trainer.graphed_steps
        if metrics.epoch > reporter.reported:  # not when retraining after a restore
            reporter.report(metrics.row(), trained_here=True)


def check_gpu_seen(settings: SearchSettings) -> None:
    """Ray hands out GPUs it finds on the machine; a torch built without CUDA (or with another
    CUDA than the driver's) sees none of them. Said in the search's terms, in every trial."""
    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            f"this trial was given {settings.gpus_per_trial:g} of a GPU (--gpus-per-trial; "
            f"{DEFAULT_GPU_SHARE:g} by default where Ray finds GPUs), but torch "
            f"{torch.__version__} on {socket.gethostname()} sees no CUDA device; install a "
            "torch built for this machine's CUDA, or pass --gpus-per-trial 0 to train on the CPU"
        )


def run_trial(config: dict[str, Any], settings: SearchSettings) -> None:
    """The Tune function trainable: reports one result per epoch of the sampled graph."""
    import torch

    check_gpu_seen(settings)
    started_at = time.time()
    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    sampled, hyperparameters = config_to_graph(config, settings.space)
    recipe = apply_hyperparameters(settings.recipe, hyperparameters)
    graph = canonical_graph(sampled)
    key = trial_key(graph, recipe, settings)
    store = GraphStore.of_run(settings.run_dir)
    if not (store.folder(key) / GRAPH).exists():
        write_graph(graph, store.folder(key) / GRAPH)
    trial_id = tune.get_context().get_trial_id()
    ended = ended_result(settings.run_dir, trial_id) or {}
    if "epoch" in ended:
        # Ended before the driver was killed, but after Tune's last saved state: its last
        # result again and nothing else. Returning without one ended it with the result in
        # that state, which may have none (saved before its first report): Tune then refused
        # the result for lacking the metric, and the search could not be resumed. A trial
        # that failed before its first epoch has no result to give: it runs again.
        tune.report({k: v for k, v in ended.items() if k not in TUNE_KEYS})
        return
    reporter = _Reporter(
        {
            "started_at": started_at,
            "graph_hash": graph_hash(graph),
            "key": key,
            "num_nodes": graph.number_of_nodes(),
            "sampled_nodes": sampled.number_of_nodes(),
            "node_id": ray.get_runtime_context().get_node_id(),
        },
        asha_milestones(settings),
    )
    while reporter.reported < recipe.epochs:
        for row in store.rows(key)[reporter.reported :]:
            reporter.report(row, trained_here=False)
        if reporter.reported >= recipe.epochs:
            break
        if store.acquire(key, trial_id):
            try:
                _train(settings, graph, recipe, store, key, reporter)
            finally:
                store.release(key, trial_id)
            break
        time.sleep(POLL_SECONDS)  # another trial is training this graph: follow it

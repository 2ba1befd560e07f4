"""Starting and stopping Ray. Apart from the search package, so that the command line stops
Ray without importing it, and apart from Ray itself until it is needed: reading a search's
results (export, the tables) never pays for Ray's import."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from dcl_search._errors import DCLSearchError
from dcl_search._words import counted


def quiet_ray_environment() -> None:
    """Ray would otherwise write an auth token into $HOME and print every worker's logs."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # failed tasks are re-raised by us (first one, in one line); Ray would log each sibling too
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    # Tune's newer console output prints its configuration box and a TensorBoard hint even at
    # verbose=0; the older one honours verbose=0, and our callbacks print the progress lines
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


# Trials (and re-evaluation runs) sharing one GPU by default. ResNet-32-class graphs keep a
# GPU busy a tenth of the time, waiting on Python and kernel launches: on one H200, 8 at once
# finished 4.2x the trial-epochs per hour of 1, and 4 at once 3.3x
# (benchmarks/results/packing-cuda-2026-12-04.json)
TASKS_PER_GPU = 8
DEFAULT_GPU_SHARE = 1 / TASKS_PER_GPU


def init_ray(
    address: str | None, *, cpus_per_task: float, gpus_per_task: float | None, noun: str
) -> float:
    """Starts Ray here, or joins the cluster at ``address`` (once per process), and checks that
    a task of ``cpus_per_task`` and ``gpus_per_task`` fits on some machine (``noun`` names the
    options in the message: ``--cpus-per-trial``, ``--cpus-per-run``).

    Returns the task's share of a GPU: ``gpus_per_task``, or where that is None,
    DEFAULT_GPU_SHARE if the cluster has GPUs, else 0."""
    quiet_ray_environment()
    import ray

    if not ray.is_initialized():
        common = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        }
        if address:
            ray.init(address=address, **common)
        else:
            # "local" starts a new instance: never join a leftover cluster by accident
            with _quicker_local_start():
                ray.init(
                    address="local",
                    num_cpus=os.cpu_count(),
                    _system_config=_socket_retries(),
                    **common,
                )
    if gpus_per_task is None:
        gpus_per_task = DEFAULT_GPU_SHARE if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    _check_fits(cpus_per_task, gpus_per_task, noun, address)
    _warn_unused_gpus(gpus_per_task, noun)
    return gpus_per_task


def _socket_retries() -> dict[str, int]:
    """Ray's processes connect to each other's sockets with up to 10 tries 1 s apart. The
    raylet connects to its object store right after starting the store's thread, and on a busy
    machine the store is not listening yet (1 local start in 4-5 on 2 busy cores): the raylet
    then sleeps a whole second before it registers, and the first trial starts that much later.
    Trying every 20 ms within the same 10 s gives up no later. A user who set either of Ray's
    two variables (``RAY_raylet_client_*``) keeps Ray's settings: the pair makes the window."""
    retries = {
        "raylet_client_connect_timeout_milliseconds": 20,
        "raylet_client_num_connect_attempts": 500,
    }
    if any(f"RAY_{name}" in os.environ for name in retries):
        return {}
    return retries


@contextlib.contextmanager
def _quicker_local_start() -> Iterator[None]:
    """Two waits of ``ray.init`` that start nothing we use, skipped while a local Ray starts
    (1.3 s instead of 2.1-3.1 s on 2 cores; every search, re-evaluation and transfer pays it):

    - Ray starts its dashboard's server even with ``include_dashboard=False``, then, with only
      its usage-statistics module loaded, waits about 0.5 s for that process to come up;
    - Ray asks for its raylet's entry in the GCS 0.1 s after starting it, and the GCS client
      (C++) sleeps a whole second when the raylet has not registered yet, which on a busy
      machine it has not. Polling the GCS every 20 ms first makes that call answer at once.

    Another Ray version without these internals starts as Ray does (the tests say so).
    """
    try:
        from ray._private import node, services
        from ray._raylet import GcsClient, NodeID
        from ray.core.generated.gcs_pb2 import GcsNodeInfo

        get_node = services.get_node
        start_api_server = node.Node.start_api_server
        alive = GcsNodeInfo.GcsNodeState.ALIVE
    except (ImportError, AttributeError):
        internals_found = False
    else:
        internals_found = True
    if not internals_found:  # another Ray version: its own start
        yield
        return

    def wait_until_registered(gcs_address: str, node_id: str) -> None:
        client = GcsClient(address=gcs_address)
        ours = NodeID.from_hex(node_id)
        # the raylet registered 0.5-1.3 s after its start on the 2 busy cores measured; past
        # 10 s Ray's own wait (30 s, then its message) takes over, so a broken start is not
        # kept twice as long
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # the whole table: a local start has only its own node, Ray before 2.54 cannot ask for
            # one node, and Ray 2.41 not for the alive ones either
            info = client.get_all_node_info(timeout=5).get(ours)
            if info is not None and info.state == alive:
                return
            time.sleep(0.02)

    def get_node_once_registered(gcs_address: str, node_id: str):
        try:
            wait_until_registered(gcs_address, node_id)
        except Exception:  # only a head start: Ray's own call retries, and reports what fails
            pass
        return get_node(gcs_address, node_id)

    def start_api_server_if_wanted(self, *, include_dashboard, raise_on_failure):
        if include_dashboard is not False:
            start_api_server(
                self, include_dashboard=include_dashboard, raise_on_failure=raise_on_failure
            )

    services.get_node = get_node_once_registered
    node.Node.start_api_server = start_api_server_if_wanted
    try:
        yield
    finally:
        services.get_node = get_node
        node.Node.start_api_server = start_api_server


def _check_fits(cpus: float, gpus: float, noun: str, address: str | None) -> None:
    """Ray would wait forever for a request no machine meets; started here, that is an error.

    On a cluster (``address``) an autoscaler may still add machines, so it is only a warning.
    """
    import ray

    machines = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if any(m.get("CPU", 0) >= cpus and m.get("GPU", 0) >= gpus for m in machines):
        return
    largest = max(machines, key=lambda m: (m.get("GPU", 0), m.get("CPU", 0)), default={})
    message = (
        f"--cpus-per-{noun} {cpus:g} --gpus-per-{noun} {gpus:g}: no machine of the Ray cluster "
        f"has that much (the largest has {largest.get('CPU', 0):g} CPUs, "
        f"{largest.get('GPU', 0):g} GPUs)"
    )
    if address is None:
        raise DCLSearchError(message)
    print(f"dcl-search: warning: {message}; waiting for the cluster to grow", file=sys.stderr)


_unused_gpus_told = False  # once per process: search --reeval-top runs its re-training too


def _warn_unused_gpus(gpus: float, noun: str) -> None:
    """CPU-only tasks on a cluster with GPUs are nearly always a forgotten option, and training
    on the CPU there takes many times as long: said once, before the work starts."""
    global _unused_gpus_told
    import ray

    total = ray.cluster_resources().get("GPU", 0)
    if gpus == 0 and total > 0 and not _unused_gpus_told:
        _unused_gpus_told = True
        print(
            f"dcl-search: warning: the Ray cluster has {counted(int(total), 'GPU')}, but "
            f"--gpus-per-{noun} is 0: "
            f"every {noun} trains on the CPU; pass --gpus-per-{noun} {DEFAULT_GPU_SHARE:g} to run "
            "eight on "
            "each GPU (measured fastest for ResNet-32-class graphs), or 1 for one per GPU",
            file=sys.stderr,
        )


def stop_ray() -> None:
    """Stops (or leaves) Ray if it runs."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        _kill_autoscaler_monitor()
        ray.shutdown()


def _kill_autoscaler_monitor() -> None:
    """``ray.shutdown`` stops the GCS before the autoscaler's monitor, whose SIGTERM handler then
    reports its end to the stopped GCS until Ray kills it a second later (the order ``ray stop``
    fixed in Ray's pull request 30672): every command ended 1 s late. The monitor of a Ray
    started here holds nothing of ours, and a kill ends it before it can report anything.
    Joined clusters are left alone: Ray lists only the processes it started itself."""
    try:
        from ray._private import ray_constants, worker

        processes = worker._global_node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])
    except AttributeError:  # another Ray version, or none started here: Ray's own order
        return
    for info in processes:
        if info.process.poll() is None:
            info.process.kill()
            try:
                info.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # stuck in the kernel: Ray's shutdown reports it
                pass

"""Starting Ray for a search or a re-evaluation: checks against the cluster's real resources."""

from __future__ import annotations

import signal

import pytest
import ray

import dcl_search._ray
from dcl_search._ray import init_ray

WARNING = (
    "dcl-search: warning: the Ray cluster has 2 GPUs, but --gpus-per-{noun} is 0: every {noun} "
    "trains on the CPU; pass --gpus-per-{noun} 1 for one {noun} per GPU, or a fraction such as "
    "0.25 to run four on each\n"
)


def _start_ray(monkeypatch: pytest.MonkeyPatch, gpus: int) -> None:
    """A real local Ray declaring ``gpus`` GPUs (Ray schedules by the declared count; nothing
    here touches CUDA); init_ray joins it instead of starting its own."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # else Ray writes a token into $HOME
    ray.init(num_cpus=1, num_gpus=gpus, include_dashboard=False, log_to_driver=False)


@pytest.fixture
def ray_with_two_gpus(monkeypatch):
    monkeypatch.setattr(dcl_search._ray, "_unused_gpus_told", False)  # a new command's process
    _start_ray(monkeypatch, gpus=2)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.parametrize("noun", ["trial", "run"])
def test_cpu_only_tasks_on_a_cluster_with_gpus_get_a_warning(ray_with_two_gpus, noun, capsys):
    init_ray(None, cpus_per_task=1, gpus_per_task=0, noun=noun)
    assert capsys.readouterr().err == WARNING.format(noun=noun)


def test_search_then_its_reeval_in_one_process_warn_once(ray_with_two_gpus, capsys):
    init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="trial")
    init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="run")  # search --reeval-top
    assert capsys.readouterr().err == WARNING.format(noun="trial")


@pytest.mark.parametrize("gpus", [1, 0.25])
def test_tasks_that_use_the_gpus_get_none(ray_with_two_gpus, gpus, capsys):
    init_ray(None, cpus_per_task=1, gpus_per_task=gpus, noun="trial")
    assert capsys.readouterr().err == ""


def test_a_cluster_without_gpus_gives_no_warning(monkeypatch, capsys):
    _start_ray(monkeypatch, gpus=0)
    try:
        init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="trial")
    finally:
        ray.shutdown()
    assert capsys.readouterr().err == ""


def test_stopping_ray_ends_its_autoscaler_monitor_before_ray_stops_the_gcs(monkeypatch):
    """Ray stops the GCS first; its monitor's SIGTERM handler then reports to the stopped GCS
    until Ray kills it a second later, at the end of every command. ``stop_ray`` ends it first."""
    from ray._private import ray_constants, worker
    from ray._private.node import Node

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="trial")
    monitor = worker._global_node.all_processes[ray_constants.PROCESS_TYPE_MONITOR][0].process
    assert monitor.poll() is None
    alive_when_reached: dict[str, bool] = {}
    stop_process = Node._kill_process_impl

    def observed(self, process_type, **options):
        infos = self.all_processes.get(process_type, [])
        alive_when_reached[process_type] = any(info.process.poll() is None for info in infos)
        stop_process(self, process_type, **options)

    monkeypatch.setattr(Node, "_kill_process_impl", observed)
    dcl_search._ray.stop_ray()
    assert not ray.is_initialized()
    assert list(alive_when_reached)[:2] == ["raylet", "gcs_server"]  # Ray's order
    assert alive_when_reached["monitor"] is False  # ended before, not a second after
    assert monitor.returncode == -signal.SIGKILL

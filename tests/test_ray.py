"""Starting Ray for a search or a re-evaluation: checks against the cluster's real resources."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator

import pytest
import ray

import dcl_search._ray
from dcl_search._ray import init_ray

WARNING = (
    "dcl-search: warning: the Ray cluster has 2 GPUs, but --gpus-per-{noun} is 0: every {noun} "
    "trains on the CPU; pass --gpus-per-{noun} 0.125 to run eight on each GPU (measured fastest "
    "for ResNet-32-class graphs), or 1 for one per GPU\n"
)


def _settings(tmp_path, **fields):
    from dcl_search.search import SearchSettings, load_search_space
    from dcl_search.training import Recipe

    return SearchSettings(
        name="run",
        storage=str(tmp_path),
        space=load_search_space("demo"),
        recipe=Recipe(epochs=2),
        **fields,
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


@contextlib.contextmanager
def _ray_started_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray started by ``init_ray``, as a search starts it, and stopped by ``stop_ray``."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    init_ray(None, cpus_per_task=1, gpus_per_task=0, noun="trial")
    try:
        yield
    finally:
        dcl_search._ray.stop_ray()


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


def test_by_default_eight_tasks_share_each_gpu_of_a_cluster_with_gpus(ray_with_two_gpus, capsys):
    assert dcl_search._ray.TASKS_PER_GPU == 8
    assert init_ray(None, cpus_per_task=1, gpus_per_task=None, noun="trial") == 0.125
    assert capsys.readouterr().err == ""  # no "every trial trains on the CPU" warning


def test_a_given_share_of_a_gpu_is_kept(ray_with_two_gpus):
    assert init_ray(None, cpus_per_task=1, gpus_per_task=0.5, noun="trial") == 0.5


def test_by_default_tasks_train_on_the_cpu_of_a_cluster_without_gpus(monkeypatch, capsys):
    _start_ray(monkeypatch, gpus=0)
    try:
        assert init_ray(None, cpus_per_task=1, gpus_per_task=None, noun="run") == 0.0
    finally:
        ray.shutdown()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("gpus", "concurrency", "expected"),
    [
        (0.125, 16, 16),  # 2 GPUs hold 16 trials of an eighth
        (0.125, 32, 16),  # the other 16 would wait
        (0.5, 16, 4),
        (0.0, 16, 16),  # CPU trials: the cores' count stays
        (4.0, 16, 1),  # fits no GPU: one, which init_ray's check has refused or warned about
    ],
)
def test_the_trials_at_once_are_what_the_gpus_hold_at_the_decided_share(
    ray_with_two_gpus, tmp_path, gpus, concurrency, expected
):
    from dcl_search.search._driver import _on_gpus

    resolved = _on_gpus(_settings(tmp_path, gpus_per_trial=None, concurrency=concurrency), gpus)
    assert (resolved.gpus_per_trial, resolved.concurrency) == (gpus, expected)
    assert resolved.device == ("cuda" if gpus else "cpu")


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


def test_a_local_ray_starts_no_dashboard_server(monkeypatch, running_processes):
    """With ``include_dashboard=False`` Ray still starts its dashboard's server (usage statistics
    only) and waits for it to come up; a Ray started here goes without."""
    from ray._private import node, ray_constants, worker

    start_api_server = node.Node.start_api_server
    with _ray_started_here(monkeypatch):
        started = worker._global_node.all_processes
        assert ray_constants.PROCESS_TYPE_RAYLET in started  # the listing is Ray's own
        assert ray_constants.PROCESS_TYPE_DASHBOARD not in started
        dashboards = [
            pid
            for pid, parent, command in running_processes()
            if parent == os.getpid() and "ray/dashboard/dashboard.py" in command
        ]
        assert dashboards == []
        assert ray.get(ray.remote(lambda: 7).remote()) == 7  # and Ray works without it
    assert node.Node.start_api_server is start_api_server  # Ray's own again afterwards


def test_ray_asks_for_its_raylet_only_once_the_raylet_has_registered(monkeypatch):
    """Asked too early, Ray's GCS client sleeps a whole second before asking again."""
    from ray._private import services
    from ray._raylet import GcsClient, NodeID
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    registered_when_asked: list[bool] = []
    get_node = services.get_node

    def observed(gcs_address: str, node_id: str):
        nodes = GcsClient(address=gcs_address).get_all_node_info(timeout=5)
        info = nodes.get(NodeID.from_hex(node_id))
        registered_when_asked.append(
            info is not None and info.state == GcsNodeInfo.GcsNodeState.ALIVE
        )
        return get_node(gcs_address, node_id)

    monkeypatch.setattr(services, "get_node", observed)
    with _ray_started_here(monkeypatch):
        pass
    assert registered_when_asked == [True]
    assert services.get_node is observed  # what was there before, put back


def test_ray_still_starts_when_the_wait_for_its_raylet_fails(monkeypatch):
    """The wait is only a head start on Ray's own call, which retries and reports."""
    import ray._raylet

    class Unreachable:
        def __init__(self, **options) -> None:
            raise ConnectionError("no GCS at this address")

    monkeypatch.setattr(ray._raylet, "GcsClient", Unreachable)
    with _ray_started_here(monkeypatch):
        assert ray.get(ray.remote(lambda: 7).remote()) == 7


SOCKET_RETRY_VARIABLES = (
    "RAY_raylet_client_connect_timeout_milliseconds",
    "RAY_raylet_client_num_connect_attempts",
)


@pytest.fixture
def no_users_socket_retries(monkeypatch):
    """A machine where the user set neither of Ray's socket-retry variables."""
    for name in SOCKET_RETRY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_users_socket_retries")
def test_rays_processes_retry_their_sockets_every_20_ms_within_the_same_10_s(monkeypatch):
    """Ray's default is 10 tries 1 s apart: a raylet that connects to its object store before
    the store listens (1 local start in 4-5 on 2 busy cores) sleeps a second before registering.
    500 tries 20 ms apart keep Ray's 10 s, so a store that never comes up still fails as late."""

    @ray.remote
    def in_a_worker() -> tuple[int, int]:
        from ray._raylet import Config

        return (
            Config.raylet_client_connect_timeout_milliseconds(),
            Config.raylet_client_num_connect_attempts(),
        )

    with _ray_started_here(monkeypatch):
        assert ray.get(in_a_worker.remote()) == (20, 500)


@pytest.mark.usefixtures("no_users_socket_retries")
@pytest.mark.parametrize("variable", SOCKET_RETRY_VARIABLES)
def test_a_user_who_set_rays_socket_retries_keeps_them(monkeypatch, variable):
    """Either variable alone with ours for the other would make another window (3 s × 500)."""
    assert dcl_search._ray._socket_retries() != {}
    monkeypatch.setenv(variable, "3000")
    assert dcl_search._ray._socket_retries() == {}


def test_the_search_command_leaves_the_share_of_a_gpu_to_rays_start() -> None:
    from dcl_search.cli import build_parser
    from dcl_search.cli._search import _settings

    args = build_parser().parse_args(["search", "--name", "x"])
    assert args.gpus_per_trial is None
    assert _settings(args).gpus_per_trial is None  # run_search decides it after init_ray
    help_text = build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    assert "default: 0.125, 8 on each GPU, where the Ray cluster has GPUs; else 0: CPU" in (
        " ".join(help_text.split())
    )


def test_settings_refuse_a_negative_share_of_a_gpu(tmp_path) -> None:
    from dcl_search.search import SearchError

    with pytest.raises(SearchError, match=r"--gpus-per-trial is -1, but must be >= 0"):
        _settings(tmp_path, gpus_per_trial=-1)


def test_a_trial_given_a_gpu_that_torch_cannot_see_says_how_to_train_on_the_cpu(tmp_path):
    import torch

    from dcl_search._errors import TrainingError
    from dcl_search.search._trial import check_gpu_seen

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    settings = _settings(tmp_path, gpus_per_trial=0.125)
    with pytest.raises(TrainingError) as raised:
        check_gpu_seen(settings)
    message = str(raised.value)
    assert message.startswith("this trial was given 0.125 of a GPU (--gpus-per-trial; 0.125 by")
    assert message.endswith("or pass --gpus-per-trial 0 to train on the CPU")
    check_gpu_seen(dataclasses.replace(settings, gpus_per_trial=0.0))  # the CPU needs no check

"""Every bad input ends in one line on stderr, exit status 2 and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcl_search.cli import main
from dcl_search.graphs import graph_to_node_link, preset_graph


def _graph_file(tmp_path: Path, mutate) -> Path:
    data = graph_to_node_link(preset_graph("dml:2:tiny_cnn"))
    mutate(data)
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(data))
    return path


def _set_model(data):
    data["nodes"][1]["model"] = "resnet33"


def _set_gate(data):
    data["edges"][1]["gate"] = "sometimes"


def _freeze_target(data):
    data["nodes"][0]["frozen"] = True


CASES = {
    "malformed JSON": (lambda p: p / "bad.json", r"bad\.json: not valid JSON \(Expecting"),
    "unknown model": (
        lambda p: _graph_file(p, _set_model),
        r"graph\.json: node 1: unknown model 'resnet33'; known models: .*tiny_cnn",
    ),
    "unknown gate": (
        lambda p: _graph_file(p, _set_gate),
        r"graph\.json: edge 0->1: unknown gate 'sometimes'; known gates: correct, cutoff, linear, negative_linear, through",
    ),
    "frozen target": (
        lambda p: _graph_file(p, _freeze_target),
        r"graph\.json: node 0 is the target and cannot be frozen",
    ),
}


def _one_error_line(capsys, status: int) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("dcl-search: error: ")
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_bad_graphs_are_refused_in_one_line(case: str, tmp_path: Path, capsys) -> None:
    make, message = CASES[case]
    path = make(tmp_path)
    if case == "malformed JSON":
        path.write_text('{"format": "dcl-search-graph", "nodes": [')
    status = main(["train", str(path), "--dataset", "digits", "--out", str(tmp_path / "run")])
    assert __import__("re").search(message, _one_error_line(capsys, status))
    assert not (tmp_path / "run").exists()


def test_a_search_folder_given_as_a_graph_points_to_its_exported_graphs(
    tmp_path: Path, capsys
) -> None:
    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    (export / "rank1-0123abcd.json").write_text("{}")
    status = main(["show", str(tmp_path / "run")])
    assert _one_error_line(capsys, status) == (
        f"dcl-search: error: {tmp_path / 'run'}: a folder, not a graph JSON file; give a graph "
        f"file, e.g. {export / 'rank1-0123abcd.json'}"
    )
    status = main(["show", str(tmp_path)])
    assert _one_error_line(capsys, status).endswith(
        "give a graph file (dcl-search export writes them from a search)"
    )


def test_missing_dataset_says_where_it_looked(tmp_path: Path, capsys) -> None:
    status = main(
        ["train", "independent", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nodata")]
    )
    line = _one_error_line(capsys, status)
    assert "cifar10" in line and str(tmp_path / "nodata") in line and "cifar-10-batches-py" in line


def _search_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dcl_search", "search", "--storage", "results", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )


def test_search_checks_the_dataset_before_any_trial_and_leaves_no_run(tmp_path: Path) -> None:
    # the data loads in a child process while Ray starts (the driver imports no torch)
    result = _search_cli(tmp_path, "--dataset", "cifar100", "--data-dir", "nodata")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcl-search: error: "), result.stderr
    assert "cifar100 dataset not found" in lines[0] and "cifar-100-python" in lines[0]
    assert not (tmp_path / "results").exists()


BROKEN_LOADER = """\
from dcl_search.datasets import register_dataset


@register_dataset("broken")
def load_broken(data_dir):
    raise RuntimeError("disk on fire")
"""


def test_a_loader_that_crashes_shows_its_traceback_and_leaves_no_run(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_LOADER)
    result = _search_cli(tmp_path, "--plugin", "broken.py", "--dataset", "broken")
    assert result.returncode == 1
    assert "checking dataset 'broken' failed" in result.stderr
    assert 'raise RuntimeError("disk on fire")' in result.stderr  # the child's own traceback
    assert not (tmp_path / "results").exists()


def test_a_packaged_dataset_is_not_loaded_before_the_trials_a_users_replacement_is(
    tmp_path: Path,
) -> None:
    from dcl_search.cli._search import dataset_check
    from dcl_search.search import SearchSettings, load_search_space
    from dcl_search.training import Recipe

    settings = SearchSettings(
        name="run", storage=str(tmp_path), space=load_search_space("demo"), recipe=Recipe()
    )
    assert dataset_check(settings, address=None) is None  # scikit-learn's digits
    (tmp_path / "mine.py").write_text(
        BROKEN_LOADER.replace('"broken")', '"digits", overwrite=True)')
    )
    result = _search_cli(tmp_path, "--plugin", "mine.py", "--dataset", "digits")
    assert result.returncode == 1
    assert "checking dataset 'digits' failed" in result.stderr
    assert "disk on fire" in result.stderr
    assert not (tmp_path / "results").exists()


def test_recipe_with_an_unknown_key(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 2\nlearning_rate: 0.1\n")
    status = main(["train", "independent:tiny_cnn", "--recipe", str(recipe)])
    line = _one_error_line(capsys, status)
    assert (
        f"{recipe}: unknown key 'learning_rate'; allowed keys: epochs, batch_size, optimizer"
        in line
    )


def test_unknown_recipe_name_lists_the_shipped_ones(capsys) -> None:
    status = main(["train", "independent:tiny_cnn", "--recipe", "fastest"])
    line = _one_error_line(capsys, status)
    assert "fastest: no such recipe file; recipes under trainers/: demo, paper" in line


def test_bad_label_noise(capsys) -> None:
    status = main(["train", "independent:tiny_cnn", "--label-noise", "1.5"])
    assert "label noise fraction is 1.5, but must be in [0, 1]" in _one_error_line(capsys, status)


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    result = subprocess.run(
        [sys.executable, "-m", "dcl_search", "show", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dcl-search: error: {bad}: not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"
    ]


def test_show_prints_the_gate_matrix(capsys) -> None:
    assert main(["show", "kd:resnet20,resnet56"]) == 0
    out = capsys.readouterr().out
    assert "resnet56" in out and "frozen" in out
    matrix = out.split("diagonal = label loss):")[1].splitlines()
    assert matrix[1].split()[:1] == ["source"] or "target" in matrix[1]
    row1 = next(line.split() for line in matrix if line.startswith("1 "))
    assert row1 == ["1", "through", "cutoff"]


OPTION_BOUNDS = {
    "search --seeds 0": (
        ["search", "--reeval-top", "1", "--seeds", "0"],
        "--seeds: is 0, but must be >= 1",
    ),
    "search --top 0": (["search", "--top", "0"], "--top: is 0, but must be >= 1"),
    "search --cpus-per-trial 0": (
        ["search", "--cpus-per-trial", "0"],
        "--cpus-per-trial: is 0, but must be a number > 0",
    ),
    "search --gpus-per-trial nan": (
        ["search", "--gpus-per-trial", "nan"],
        "--gpus-per-trial: is nan, but must be a number >= 0",
    ),
    "reeval --top 0": (["reeval", "results/x", "--top", "0"], "--top: is 0, but must be >= 1"),
    "transfer --seeds x": (
        ["transfer", "g.json", "--seeds", "x"],
        "--seeds: 'x' is not an integer",
    ),
    "export --top -1": (["export", "results/x", "--top", "-1"], "--top: is -1, but must be >= 1"),
    # 0 used to mean "the default" and ran a whole search
    "search --concurrency 0": (
        ["search", "--concurrency", "0"],
        "--concurrency: is 0, but must be >= 1",
    ),
    "search --samples 0": (["search", "--samples", "0"], "--samples: is 0, but must be >= 1"),
    # the digits search loads no data before its trials, which would all fail
    "search --val-fraction 1.5": (
        ["search", "--val-fraction", "1.5"],
        "--val-fraction: is 1.5, but must be a number strictly between 0 and 1",
    ),
    "train --val-fraction 0": (
        ["train", "dml:2", "--val-fraction", "0"],
        "--val-fraction: is 0, but must be a number strictly between 0 and 1",
    ),
    "search --reduction-factor 1": (
        ["search", "--reduction-factor", "1"],
        "--reduction-factor: is 1, but must be >= 2",
    ),
    "search --max-failures -1": (
        ["search", "--max-failures", "-1"],
        "--max-failures: is -1, but must be >= 0",
    ),
    "train --epochs 0": (["train", "dml:2", "--epochs", "0"], "--epochs: is 0, but must be >= 1"),
    "transfer --epochs 0": (
        ["transfer", "g.json", "--epochs", "0"],
        "--epochs: is 0, but must be >= 1",
    ),
}


@pytest.mark.parametrize("case", OPTION_BOUNDS)
def test_out_of_range_options_stop_before_anything_runs(case: str, capsys) -> None:
    """Checked by argparse: a search with --seeds 0 used to fail only after the whole search."""
    argv, message = OPTION_BOUNDS[case]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"dcl-search {argv[0]}: error: argument {message}"


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "--device tpu: unknown device; use cpu, cuda or cuda:N"),
        ("mps", "--device mps: not supported; use cpu, cuda or cuda:N"),
        ("cuda:64", "--device cuda:64"),  # no CUDA here, or fewer than 65 devices
    ],
)
def test_a_bad_device_is_refused_before_a_teacher_is_pretrained(
    device: str, message: str, tmp_path: Path, capsys
) -> None:
    cache = tmp_path / "pretrained"
    status = main(["train", "kd:tiny_cnn,mlp", "--device", device, "--cache-dir", str(cache)])
    line = _one_error_line(capsys, status)  # one line: no "pre-training ..." before it
    assert line.startswith(f"dcl-search: error: {message}"), line
    assert not cache.exists()


def test_a_search_no_machine_can_hold_fails_at_once_and_leaves_no_folder(tmp_path: Path) -> None:
    """Ray would keep such trials pending forever; started here, that is an error."""
    result = subprocess.run(
        [
            sys.executable, "-m", "dcl_search", "search", "--cpus-per-trial", "4096",
            "--samples", "1", "--epochs", "1", "--storage", str(tmp_path / "results"),
            "--name", "big",
        ],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "dcl-search: error: --cpus-per-trial 4096 --gpus-per-trial 0: "
        "no machine of the Ray cluster has that much (the largest has "
    ), last
    assert not (tmp_path / "results/big").exists()


def test_export_of_a_folder_that_is_no_search_creates_nothing(tmp_path: Path, capsys) -> None:
    status = main(["export", str(tmp_path / "nope")])
    assert "not a search folder (no search.json)" in _one_error_line(capsys, status)
    assert not (tmp_path / "nope").exists()


def test_resume_refuses_options_that_would_change_the_stored_settings(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "results/run"
    status = main(["search", "--resume", str(run), "--samples", "50", "--top", "2"])
    assert _one_error_line(capsys, status) == (
        f"dcl-search: error: --resume {run} keeps the settings in its search.json; drop "
        "--samples (or start a new search under another --name)"
    )


def test_resume_of_a_moved_unfinished_search_says_where_it_was_made(tmp_path: Path, capsys) -> None:
    # Tune's and Optuna's saved state name the folder: resumed elsewhere it failed with
    # Optuna's traceback at the first trial
    from dcl_search.search import SearchSettings, load_search_space
    from dcl_search.training import Recipe

    made = tmp_path / "results"
    SearchSettings(
        name="run", storage=str(made), space=load_search_space("demo"), recipe=Recipe()
    ).save()
    moved = tmp_path / "elsewhere/run"
    moved.parent.mkdir()
    (made / "run").rename(moved)
    status = main(["search", "--resume", str(moved)])
    assert _one_error_line(capsys, status) == (
        f"dcl-search: error: --resume {moved}: this search was made in {made / 'run'}, which "
        "Ray Tune's and Optuna's saved state name; move the folder back there to resume it"
    )

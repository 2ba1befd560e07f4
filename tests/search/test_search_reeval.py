from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dcl_search.graphs import preset_graph, write_graph
from dcl_search.search import baselines, format_summary, summarize, without_checkpoints


def _runs() -> pd.DataFrame:
    rows = []
    for label, vals in {
        "independent": [0.90, 0.92],
        "dml:2": [0.93, 0.95],
        "rank1-abc": [0.96, 0.94],
    }.items():
        for seed, v in zip((1000, 1001), vals, strict=True):
            rows.append(
                {
                    "label": label,
                    "graph_hash": label,
                    "num_nodes": 2,
                    "models": "m",
                    "seed": seed,
                    "val_acc_node0": v,
                    "test_acc_node0": v - 0.01,
                    "val_acc_ensemble": v,
                    "test_acc_ensemble": v,
                }
            )
    return pd.DataFrame(rows)


def test_summary_ranks_by_validation_mean_and_gives_the_gain() -> None:
    table = summarize(_runs())
    assert table["label"].tolist() == ["rank1-abc", "dml:2", "independent"]
    assert table.loc[0, "val_mean"] == pytest.approx(0.95)
    assert table.loc[0, "val_std"] == pytest.approx(np.std([0.96, 0.94], ddof=1))
    assert table.loc[0, "test_mean"] == pytest.approx(0.94)
    assert table["val_gain"].tolist() == pytest.approx([0.04, 0.03, 0.0])
    text = format_summary(table)
    assert (
        "95.00 ± 1.41" in text
        and "+4.00" in text
        and text.splitlines()[1].split()[:2] == ["1", "rank1-abc"]
    )


def test_baselines_follow_the_target_and_the_graph_size() -> None:
    graph = preset_graph("kd:resnet20,resnet56")
    labels = [
        (c.label, c.graph.number_of_nodes(), c.graph.nodes[0]["model"]) for c in baselines(graph)
    ]
    assert labels == [("independent", 1, "resnet20"), ("dml:2", 2, "resnet20")]


def test_transfer_drops_checkpoints_of_the_old_dataset() -> None:
    graph = preset_graph("kd:tiny_cnn,mlp")
    graph.nodes[1]["checkpoint"] = "/old/node0.pt"
    assert "checkpoint" not in without_checkpoints(graph).nodes[1]
    assert graph.nodes[1]["checkpoint"] == "/old/node0.pt"  # the input is left alone


def _imagefolder(root: Path, classes: int = 3, per_class: int = 40) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
                pixels[:, c * 2 : c * 2 + 3] = 230  # a class-specific bright band: learnable
                Image.fromarray(pixels).save(folder / f"{i}.png")


def _transfer(tmp_path: Path, graph_file: Path, *options: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "dcl_search",
        "transfer",
        str(graph_file),
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        *options,
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=400, env=env
    )


def _transfer_found(tmp_path: Path, preset: str, *options: str) -> subprocess.CompletedProcess:
    """Transfers the graph ``preset``, saved as ``found.json``, to a tiny ImageFolder."""
    _imagefolder(tmp_path / "data")
    graph_file = write_graph(preset_graph(preset), tmp_path / "found.json")
    result = _transfer(tmp_path, graph_file, "--val-fraction", "0.2", *options)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_transfer_trains_a_graph_and_the_baselines_on_another_dataset(tmp_path: Path) -> None:
    options = ("--recipe", "demo", "--epochs", "3", "--seeds", "2")
    result = _transfer_found(tmp_path, "kd:tiny_cnn,mlp", *options)
    summary = pd.read_csv(tmp_path / "out/summary.csv")
    assert sorted(summary["label"]) == ["dml:2", "found", "independent"]
    assert (summary["seeds"] == 2).all()
    runs = pd.read_csv(tmp_path / "out/runs.csv")
    assert sorted(runs["seed"].unique()) == [1000, 1001] and len(runs) == 6
    assert "val gain vs independent" in result.stdout
    teachers = list((tmp_path / "out/pretrained").glob("imagefolder-mlp-*.pt"))
    assert len(teachers) == 1, (
        "the frozen teacher is pre-trained once on the new dataset and reused"
    )


STATUS_LINE = re.compile(r"  \.\.\. ([0-2]) of 3 runs done; running \(epoch, node 0 val\): (.+)")
RUN_ENTRY = re.compile(r"(found|independent|dml:2) seed 1000 (\d+)/60 \d+\.\d\d%")


def test_long_runs_show_a_status_line_of_the_running_ones(tmp_path: Path) -> None:
    options = ("--epochs", "60", "--seeds", "1", "--status-every", "0.1")
    result = _transfer_found(tmp_path, "dml:mlp,mlp", *options)
    statuses = [m for line in result.stderr.splitlines() if (m := STATUS_LINE.fullmatch(line))]
    entries = [
        RUN_ENTRY.fullmatch(entry)
        for match in statuses
        if match.group(2) != "no epoch finished yet"
        for entry in match.group(2).split(", ")
    ]
    assert entries and all(entries), result.stderr[-3000:]
    assert all(1 <= int(entry.group(2)) <= 60 for entry in entries)


def test_a_run_that_cannot_train_is_one_line_not_a_ray_traceback(tmp_path: Path) -> None:
    _imagefolder(tmp_path / "data", per_class=10)  # 27 training images after the 10% split
    graph_file = write_graph(preset_graph("independent:mlp"), tmp_path / "g.json")
    result = _transfer(tmp_path, graph_file, "--epochs", "1", "--seeds", "2")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "dcl-search: error: the training split has 27 images, fewer than one batch of 64"
    ], result.stderr
    assert "Traceback" not in result.stderr


def test_transfer_of_a_collaborative_graph_with_label_noise(tmp_path: Path) -> None:
    import json

    import torch

    from dcl_search.graphs import graph_from_node_link, read_graph

    _imagefolder(tmp_path / "data")
    data = {
        "format": "dcl-search-graph",
        "version": 1,
        "nodes": [
            {"id": 0, "model": "tiny_cnn_fc", "heads": 2, "intra": ["out", "kernel"]},
            {"id": 1, "model": "tiny_cnn", "intra": {"mid": {"at": "stages"}}},
        ],
        "edges": [
            {"source": 0, "target": 0, "gate": "through"},
            {"source": 1, "target": 0, "gate": "linear"},
            {"source": 1, "target": 1, "gate": "through"},
        ],
    }
    graph_file = write_graph(graph_from_node_link(data), tmp_path / "found.json")
    options = ("--recipe", "demo", "--epochs", "2", "--seeds", "1", "--val-fraction", "0.2")
    result = _transfer(tmp_path, graph_file, *options, "--label-noise", "0.4")
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = list((tmp_path / "out").rglob("summary.json"))
    assert len(summaries) == 3  # the found graph, independent, dml:2
    for path in summaries:
        assert json.loads(path.read_text())["label_noise"] == {"fraction": 0.4, "mode": "epoch"}
    (found,) = [p for p in summaries if read_graph(p.parent / "graph.json").nodes[0].get("options")]
    options0 = read_graph(found.parent / "graph.json").nodes[0]["options"]
    assert (options0.heads, [name for name, _ in options0.intra]) == (2, ["kernel", "out"])
    weights = torch.load(found.parent / "weights/node0.pt")
    assert not any(k.startswith(("tails", "trunk", "mid")) for k in weights)  # the plain network

"""train_run: the run folder (graph.json, metrics.csv, summary.json, weights/, checkpoint.pt)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

import dcl_search.training._run as run_module
from dcl_search._errors import TrainingError
from dcl_search.graphs import graph_hash, graph_to_node_link, preset_graph, read_graph
from dcl_search.models import build_model
from dcl_search.training import (
    CollaborativeTrainer,
    Recipe,
    learning_rate,
    recipe_from_dict,
    train_run,
)

COLUMNS = [
    "epoch",
    "acc_node0",
    "acc_node1",
    "acc_ensemble",
    "loss_node0",
    "loss_node1",
    "lr",
    "seconds",
]
REPO = Path(__file__).resolve().parents[2]


def _recipe(epochs: int = 2) -> Recipe:
    return recipe_from_dict(
        {
            "epochs": epochs,
            "batch_size": 64,
            "schedule": {"name": "cosine", "milestones": []},
            "precision": "fp32",
            "augment": {"crop_padding": 1, "flip": False},
        }
    )


def _graph():
    return preset_graph("dml:2:mlp")


def _metrics_rows(history) -> list[tuple]:
    return [(m.epoch, m.val_acc, m.val_acc_ensemble, m.train_loss, m.lr) for m in history]


def _weights(out: Path) -> list[dict[str, torch.Tensor]]:
    return [torch.load(out / "weights" / f"node{i}.pt", weights_only=True) for i in range(2)]


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


def _accuracy(model: torch.nn.Module, data, split: str) -> float:
    subset = getattr(data, split)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model.eval()((subset.images.float() / 255.0 - mean) / std)
    return (logits.argmax(1) == subset.labels).double().mean().item()


@pytest.fixture(scope="module")
def finished_run(digits, tmp_path_factory):
    """A complete 2-epoch dml:2:mlp run, seed 3."""
    out = tmp_path_factory.mktemp("run") / "out"
    seen = []
    result = train_run(_graph(), digits, _recipe(), out, seed=3, on_epoch=seen.append)
    return out, result, seen


def test_run_folder_holds_graph_metrics_and_checkpoint(digits, finished_run) -> None:
    out, result, seen = finished_run
    assert result.out_dir == out and result.resumed_from_epoch == 0
    assert [m.epoch for m in seen] == [1, 2]
    assert [m.epoch for m in result.history] == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "graph.json",
        "metrics.csv",
        "summary.json",
        "weights",
    ]

    graph = read_graph(out / "graph.json")
    assert graph_hash(graph) == graph_hash(_graph())
    assert graph_to_node_link(graph) == graph_to_node_link(_graph())

    table = pd.read_csv(out / "metrics.csv")
    assert list(table.columns) == COLUMNS
    assert table["epoch"].tolist() == [1, 2]
    for row, metrics in zip(table.itertuples(index=False), result.history, strict=True):
        assert (row.acc_node0, row.acc_node1) == pytest.approx(metrics.val_acc, abs=1e-12)
        assert row.acc_ensemble == pytest.approx(metrics.val_acc_ensemble, abs=1e-12)
        assert (row.loss_node0, row.loss_node1) == pytest.approx(metrics.train_loss, rel=1e-9)
        assert row.seconds == pytest.approx(metrics.seconds) and row.seconds > 0
    assert table["lr"].tolist() == pytest.approx([learning_rate(_recipe(), e) for e in (0, 1)])

    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2


def test_summary_records_accuracies_settings_and_environment(digits, finished_run) -> None:
    out, result, _ = finished_run
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == json.loads(json.dumps(result.summary))
    keys = ["acc_node0", "acc_node1", "acc_ensemble"]
    for split, accuracy in (("val", result.val), ("test", result.test)):
        assert list(summary[split]) == keys
        assert [summary[split][k] for k in keys] == [*accuracy.nodes, accuracy.ensemble]
        assert all(0.0 <= summary[split][k] <= 1.0 for k in keys)
    assert summary["val"]["acc_node0"] == result.history[-1].val_acc[0]
    assert recipe_from_dict(summary["recipe"]) == _recipe()
    assert summary["seed"] == 3
    assert summary["device"] == "cpu" and summary["precision"] == "fp32"
    assert summary["epochs"] == 2
    assert summary["dataset"]["name"] == "digits"
    assert summary["dataset"]["test_size"] == len(digits.test)
    assert summary["graph_hash"] == graph_hash(_graph())
    env = summary["environment"]
    assert env["torch"] == torch.__version__
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert env["git_revision"] == (head.stdout.strip() if head.returncode == 0 else "unknown")


def test_saved_weights_load_into_fresh_models(digits, finished_run) -> None:
    out, result, _ = finished_run
    for node, weights in enumerate(_weights(out)):
        model = build_model("mlp", digits.num_classes, digits.in_channels)
        model.load_state_dict(weights)  # strict: every key present, every shape right
        assert _accuracy(model, digits, "test") == pytest.approx(result.test.nodes[node], abs=1e-12)
        assert _accuracy(model, digits, "val") == pytest.approx(result.val.nodes[node], abs=1e-12)


def test_second_call_on_a_finished_folder_trains_nothing(digits, finished_run, tmp_path) -> None:
    out, first = tmp_path / "out", finished_run[1]
    shutil.copytree(finished_run[0], out)
    weights = _weights(out)
    metrics_text = (out / "metrics.csv").read_text(encoding="utf-8")
    seen = []
    again = train_run(_graph(), digits, _recipe(), out, seed=3, on_epoch=seen.append)
    assert again.resumed_from_epoch == 2
    assert seen == []
    assert _metrics_rows(again.history) == _metrics_rows(first.history)
    assert (again.val, again.test) == (first.val, first.test)
    assert (out / "metrics.csv").read_text(encoding="utf-8") == metrics_text
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1, 2]
    assert _same(_weights(out), weights)


def test_interrupted_run_continues_from_its_checkpoint(digits, finished_run, tmp_path) -> None:
    _, uninterrupted, _ = finished_run
    out = tmp_path / "out"
    trainer = CollaborativeTrainer(_graph(), digits, _recipe(), seed=3)
    assert [m.epoch for m in trainer.train_epochs(until=1)] == [1]
    trainer.save_checkpoint(out / "checkpoint.pt")

    seen = []
    result = train_run(_graph(), digits, _recipe(), out, seed=3, on_epoch=seen.append)
    assert result.resumed_from_epoch == 1
    assert [m.epoch for m in seen] == [2]
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1, 2]
    assert _metrics_rows(result.history) == _metrics_rows(uninterrupted.history)
    assert _same(_weights(out), _weights(finished_run[0]))
    assert (result.val, result.test) == (uninterrupted.val, uninterrupted.test)


def test_crash_before_the_summary_is_finished_by_the_next_call(digits, tmp_path) -> None:
    class Stop(Exception):
        pass

    def stop_at_last_epoch(metrics) -> None:
        if metrics.epoch == 2:
            raise Stop

    out = tmp_path / "out"
    with pytest.raises(Stop):
        train_run(_graph(), digits, _recipe(), out, on_epoch=stop_at_last_epoch)
    assert not (out / "summary.json").exists() and not (out / "weights").exists()
    result = train_run(_graph(), digits, _recipe(), out)
    assert result.resumed_from_epoch == 2
    assert (out / "summary.json").is_file()
    assert sorted(p.name for p in (out / "weights").iterdir()) == ["node0.pt", "node1.pt"]


def test_metrics_are_completed_after_a_crash_between_checkpoint_and_metrics(
    digits, tmp_path, monkeypatch
) -> None:
    class Killed(Exception):
        pass

    out = tmp_path / "out"
    real_write, calls = run_module.write_metrics, []

    def crash_on_second_write(history, path) -> None:
        calls.append(len(history))
        if len(calls) == 2:
            raise Killed  # killed after checkpoint.pt of epoch 2 was written
        real_write(history, path)

    monkeypatch.setattr(run_module, "write_metrics", crash_on_second_write)
    with pytest.raises(Killed):
        train_run(_graph(), digits, _recipe(), out)
    monkeypatch.setattr(run_module, "write_metrics", real_write)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 2

    result = train_run(_graph(), digits, _recipe(), out)
    assert result.resumed_from_epoch == 2
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [1, 2]


def test_folder_of_another_run_is_refused(digits, finished_run, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((finished_run[0] / "checkpoint.pt").read_bytes())
    with pytest.raises(
        TrainingError, match=r"another run \(these settings differ: seed\)"
    ) as error:
        train_run(_graph(), digits, _recipe(), out, seed=4)
    assert str(out / "checkpoint.pt") in str(error.value)
    assert not (out / "summary.json").exists() and not (out / "metrics.csv").exists()

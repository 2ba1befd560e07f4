"""The record a trainer emits after every epoch, and its flat table form."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpochMetrics:
    """Validation accuracies (fractions in [0, 1]) and mean training losses after an epoch."""

    epoch: int  # epochs finished, counted from 1
    val_acc: tuple[float, ...]  # per node
    val_acc_ensemble: float  # mean of the nodes' softmax
    train_loss: tuple[float, ...]  # per node, mean over the epoch's steps
    lr: float
    seconds: float  # wall time of this epoch, evaluation included

    def row(self) -> dict[str, float]:
        """Flat columns: epoch, acc_node0 … acc_node{M-1}, acc_ensemble, loss_node0 …, lr, seconds."""
        row: dict[str, float] = {"epoch": self.epoch}
        row.update({f"acc_node{i}": a for i, a in enumerate(self.val_acc)})
        row["acc_ensemble"] = self.val_acc_ensemble
        row.update({f"loss_node{i}": v for i, v in enumerate(self.train_loss)})
        row.update({"lr": self.lr, "seconds": self.seconds})
        return row


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of every node and of the ensemble on one split."""

    nodes: tuple[float, ...]
    ensemble: float

    def row(self) -> dict[str, float]:
        row = {f"acc_node{i}": a for i, a in enumerate(self.nodes)}
        row["acc_ensemble"] = self.ensemble
        return row

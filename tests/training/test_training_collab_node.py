"""Collaborative nodes in the trainer: inference path, gradient scaling, layer-local updates,
losses as the trainer computes them, resume, exported weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dcl_search.collab import (
    CollaborativeNode,
    consensus_loss,
    hierarchical_dropout,
    kernel_loss,
    mid_losses,
    node_options,
    pull_push_loss,
    pull_push_weights,
)
from dcl_search.graphs import FORMAT, VERSION, graph_from_node_link
from dcl_search.models import build_model
from dcl_search.training import CollaborativeTrainer, Recipe, recipe_from_dict


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


def _graph(**node0):
    data = {
        "format": FORMAT,
        "version": VERSION,
        "nodes": [{"id": 0, **node0}],
        "edges": [{"source": 0, "target": 0, "gate": "through"}],
    }
    return graph_from_node_link(data)


def _node(model: str, seed: int = 0, **attrs) -> CollaborativeNode:
    torch.manual_seed(seed)
    return CollaborativeNode(model, node_options({"model": model, **attrs}, "test"), 10, 1)


def _batch(digits, n: int = 32):
    x = (digits.train.images[:n].float() / 255 - 0.5) / 0.25
    return x, digits.train.labels[:n]


def test_inference_is_the_base_network_and_exports_its_plain_weights(digits) -> None:
    node = _node("tiny_cnn", heads=3, intra=["mid", "pull_push", "kernel"])
    base = node.inference_model()
    plain = build_model("tiny_cnn", 10, 1)
    assert base.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(base.state_dict())
    node.eval()
    plain.eval()
    x, _ = _batch(digits)
    assert torch.equal(node(x), plain(x))
    # head 0's training logits are the inference network's, the other heads are separate copies
    node.train()
    out = node.train_forward(x, digits.train.labels[:32])
    plain.train()
    assert torch.allclose(out.logits, plain(x), atol=1e-6)
    base_params = {id(p) for p in base.parameters()}
    assert {id(p) for p in node.tails[1].parameters()}.isdisjoint(base_params)
    assert {id(p) for p in node.trunk.parameters()} <= base_params


def test_multi_head_loss_is_eq3_heads_learn_in_full_and_shared_layers_get_one_over_h(
    digits,
) -> None:
    heads = 3
    node = _node("tiny_cnn", heads=heads, split="layer2")
    x, y = _batch(digits)
    out = node.train_forward(x, y)
    out.own.mean().backward()
    got = {name: p.grad.clone() for name, p in node.named_parameters()}

    # reference without any rescaling: trunk, then each tail, then Eq. 3 by consensus_loss
    ref = copy.deepcopy(node)
    ref.zero_grad(set_to_none=True)
    h = x
    for block in ref.trunk:
        h = block(h)
    logits = []
    for tail in ref.tails:
        g = h
        for block in tail.blocks:
            g = block(g)
        logits.append(tail.classifier(tail.pre(g)))
    population = torch.stack(logits)
    loss = consensus_loss(population, y, 0.5, 2.0).mean()
    assert torch.allclose(out.own.mean(), loss)
    # Eq. 3 by hand for one sample: (1/H) Σ_h [α CE + (1-α) CE(q_h, softmax(z_h/T))]
    z = population[:, 0].detach()
    terms = []
    for k in range(heads):
        q = ((z.sum(0) - z[k]) / (heads - 1) / 2).softmax(0)
        soft = -(q * (z[k] / 2).log_softmax(0)).sum()
        terms.append(0.5 * F.cross_entropy(z[k][None], y[:1]) + 0.5 * soft)
    assert torch.allclose(torch.stack(terms).mean(), consensus_loss(population, y)[0].detach())
    loss.backward()
    for name, p in ref.named_parameters():
        plain = p.grad
        if name.startswith("trunk."):
            # the shared layers: 1/H of what the heads, each learning in full, send down
            assert torch.allclose(got[name], plain, rtol=1e-4, atol=1e-7), name
        else:
            assert torch.allclose(got[name], heads * plain, rtol=1e-4, atol=1e-7), name
    assert any(n.startswith("trunk.") for n in got) and any(n.startswith("tails.2") for n in got)


def test_multi_instance_shares_nothing(digits) -> None:
    node = _node("tiny_cnn", heads=2, split="multi-instance")
    assert len(node.trunk) == 0 and all(len(t.blocks) == 3 for t in node.tails)


def test_mid_and_pull_push_update_only_their_own_layer(digits) -> None:
    """The trainer's gradients equal: the plain label-loss gradient + for each layer i the
    gradient of its local loss recomputed on a *detached* input of layer i."""
    graph = _graph(model="tiny_cnn", intra=["mid", "pull_push"])
    trainer = CollaborativeTrainer(graph, digits, _recipe(1))
    node = trainer.models[0]
    ref = copy.deepcopy(node)
    x, y = _batch(digits)
    logits, outputs = trainer._forward_all(x, y)
    losses = trainer._collaborative_backward(logits, y, 0.0, outputs)
    assert len(outputs[0].local) == 2  # after layer1 and layer2, not after the last layer

    blocks = [*ref.trunk]
    feats, h = [], x
    for block in blocks:
        h = block(h)
        feats.append(h)
    final = ref.tails[0].classifier(ref.tails[0].pre(h))
    label_loss = F.cross_entropy(final, y)
    label_loss.backward(retain_graph=True)
    # layer-local reference: re-run layer i on its detached input
    weights = pull_push_weights(2)
    local_values = []
    for i in range(2):
        inp = x if i == 0 else feats[i - 1].detach()
        fi = blocks[i](inp)
        loss = mid_losses(
            [ref.mid[str(j)](fi if j == i else feats[j].detach()) for j in range(2)],
            final.detach(),
            y,
        )[i]
        loss = loss + pull_push_loss(
            ref.pull_push[str(i)](fi), x, F.one_hot(y, 10).float(), *weights[i]
        )
        loss.backward()
        local_values.append(loss.item())
    for (name, p), (_, q) in zip(node.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    # the node's reported loss is its label loss plus every local term
    assert losses[0].item() == pytest.approx(label_loss.item() + sum(local_values), rel=1e-5)


def test_kernel_loss_covers_the_last_two_stages_and_adds_to_the_node_loss(digits) -> None:
    node = _node("tiny_cnn", intra={"kernel": {"weight": 0.5}})
    x, y = _batch(digits)
    out = node.train_forward(x, y)
    convs = [node.trunk[1][0], node.trunk[2][0]]  # layer2 and layer3
    expected = 0.5 * (kernel_loss(convs[0].weight) + kernel_loss(convs[1].weight))
    assert torch.allclose(out.extra, expected)
    assert out.own is None and out.local == []


def test_out_gives_the_consensus_of_hierarchical_dropout_branches(digits) -> None:
    node = _node("tiny_cnn_fc", intra={"out": {"branches": 3}})
    x, y = _batch(digits)
    torch.manual_seed(7)
    out = node.train_forward(x, y)
    torch.manual_seed(7)
    h = x
    for block in node.trunk:
        h = block(h)
    predictions = hierarchical_dropout(node.tails[0].classifier, node.tails[0].pre(h), 3)
    assert predictions.shape[0] == 9  # K^n with K = 3 and the classifier's 2 dropout layers
    assert torch.allclose(out.own, consensus_loss(predictions, y, 0.5, 2.0))
    assert torch.allclose(out.logits, predictions[0])


@pytest.mark.parametrize(
    "node0",
    [
        {"model": "tiny_cnn", "heads": 2, "intra": ["mid", "kernel"]},
        {"model": "tiny_cnn_fc", "intra": ["out", "pull_push"]},
    ],
    ids=["heads-mid-kernel", "out-pull_push"],
)
def test_collaborative_run_learns_resumes_exactly_and_exports_plain_weights(
    digits, tmp_path: Path, node0: dict
) -> None:
    graph = _graph(**node0)
    straight = CollaborativeTrainer(graph, digits, _recipe(10), seed=3)
    metrics = list(straight.train_epochs())
    assert metrics[-1].val_acc[0] > 0.5  # chance is 0.1
    first = CollaborativeTrainer(graph, digits, _recipe(10), seed=3)
    list(first.train_epochs(until=4))
    first.save_checkpoint(tmp_path / "c.pt")
    resumed = CollaborativeTrainer(graph, digits, _recipe(10), seed=3)
    resumed.load_checkpoint(tmp_path / "c.pt")
    list(resumed.train_epochs())
    for a, b in zip(
        resumed.models[0].state_dict().values(),
        straight.models[0].state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    (path,) = straight.save_weights(tmp_path / "weights")
    plain = build_model(node0["model"], 10, 1)
    plain.load_state_dict(torch.load(path))
    plain.eval()
    x, _ = _batch(digits)
    # (the trainer runs channels_last, the fresh model contiguous: equal up to rounding)
    assert torch.allclose(plain(x), straight.models[0].eval()(x), atol=1e-5)

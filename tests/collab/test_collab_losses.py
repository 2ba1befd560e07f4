"""The collaborative-learning losses against hand computations on tiny tensors.

Expected values are written with plain-Python loops and ``math`` so that they do not share
code (or vectorised shortcuts) with the implementation.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from dcl_search.collab._losses import (
    LocalClassifier,
    channel_std,
    consensus_loss,
    hierarchical_dropout,
    kernel_loss,
    mid_losses,
    pull_push_loss,
    pull_push_weights,
    scale_gradient,
    similarity_matrix,
)


def softmax(row: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(v / temperature) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def cross_entropy(target: list[float], row: list[float], temperature: float = 1.0) -> float:
    probs = softmax(row, temperature)
    return -sum(t * math.log(p) for t, p in zip(target, probs, strict=True))


def onehot(label: int, classes: int) -> list[float]:
    return [1.0 if k == label else 0.0 for k in range(classes)]


def cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(v * v for v in a))
    nb = math.sqrt(sum(v * v for v in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def centred_similarity(rows: list[list[float]]) -> list[list[float]]:
    mean = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
    centred = [[v - m for v, m in zip(row, mean, strict=True)] for row in rows]
    return [[cosine(a, b) for b in centred] for a in centred]


def frobenius(a: list[list[float]], b: list[list[float]]) -> float:
    return math.sqrt(
        sum((x - y) ** 2 for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))
    )


def population_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# P = 3 heads, B = 2 samples, C = 3 classes
LOGITS = [
    [[1.0, 2.0, 0.5], [0.0, -1.0, 2.0]],
    [[0.5, 1.5, 1.0], [1.0, 0.0, 0.5]],
    [[2.0, 0.0, -0.5], [-0.5, 0.5, 1.5]],
]
LABELS = [1, 2]


# -- scale_gradient ---------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.25, 1.0 / 3.0, -2.0])
def test_scale_gradient_is_identity_forward_and_scales_the_gradient(factor: float) -> None:
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    weights = torch.tensor([[2.0, 1.0], [-1.0, 4.0]])
    y = scale_gradient(x, factor)
    assert torch.equal(y, x)
    (y.pow(3) * weights).sum().backward()
    plain = 3 * x.detach().pow(2) * weights
    assert torch.equal(x.grad, plain * factor)


# -- consensus_loss ---------------------------------------------------------------------------


def hand_consensus(logits, labels, alpha: float, temperature: float) -> list[float]:
    heads, classes = len(logits), len(logits[0][0])
    out = []
    for b, label in enumerate(labels):
        total = 0.0
        for i in range(heads):
            others = [
                sum(logits[j][b][k] for j in range(heads) if j != i) / (heads - 1)
                for k in range(classes)
            ]
            target = softmax(others, temperature)
            hard = cross_entropy(onehot(label, classes), logits[i][b])
            soft = cross_entropy(target, logits[i][b], temperature)
            total += alpha * hard + (1 - alpha) * soft
        out.append(total / heads)
    return out


@pytest.mark.parametrize(("alpha", "temperature"), [(0.5, 2.0), (0.3, 1.0), (1.0, 3.0)])
def test_consensus_loss_matches_hand_computation(alpha: float, temperature: float) -> None:
    z = torch.tensor(LOGITS)
    loss = consensus_loss(z, torch.tensor(LABELS), alpha=alpha, temperature=temperature)
    assert loss.shape == (2,)
    expected = hand_consensus(LOGITS, LABELS, alpha, temperature)
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)


def test_consensus_loss_of_two_heads_targets_the_other_head() -> None:
    z = torch.tensor(LOGITS[:2])
    loss = consensus_loss(z, torch.tensor(LABELS), alpha=0.0, temperature=2.0)
    expected = [
        (
            cross_entropy(softmax(LOGITS[1][b], 2.0), LOGITS[0][b], 2.0)
            + cross_entropy(softmax(LOGITS[0][b], 2.0), LOGITS[1][b], 2.0)
        )
        / 2
        for b in range(2)
    ]
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)


def test_consensus_targets_are_detached() -> None:
    # with q detached, each z_i's gradient comes from its own term only:
    # d/dz_i = [α (softmax(z_i) − y) + (1 − α)(softmax(z_i / T) − q_i) / T] / P
    alpha, temperature = 0.3, 2.0
    z = torch.tensor(LOGITS, requires_grad=True)
    consensus_loss(z, torch.tensor(LABELS), alpha, temperature).sum().backward()
    heads, classes = 3, 3
    for i, b in itertools.product(range(heads), range(2)):
        others = [
            sum(LOGITS[j][b][k] for j in range(heads) if j != i) / (heads - 1)
            for k in range(classes)
        ]
        q = softmax(others, temperature)
        p1 = softmax(LOGITS[i][b])
        pt = softmax(LOGITS[i][b], temperature)
        y = onehot(LABELS[b], classes)
        expected = [
            (alpha * (p1[k] - y[k]) + (1 - alpha) * (pt[k] - q[k]) / temperature) / heads
            for k in range(classes)
        ]
        assert z.grad[i, b].tolist() == pytest.approx(expected, abs=1e-6)


def test_consensus_loss_computes_in_float32() -> None:
    z = torch.tensor(LOGITS, dtype=torch.bfloat16)
    assert consensus_loss(z, torch.tensor(LABELS)).dtype == torch.float32


@pytest.mark.parametrize("heads", [0, 1])
def test_consensus_loss_needs_two_predictions(heads: int) -> None:
    with pytest.raises(ValueError, match="at least 2 predictions"):
        consensus_loss(torch.zeros(heads, 2, 3), torch.tensor(LABELS))


# -- hierarchical_dropout ---------------------------------------------------------------------


def two_dropout_classifier() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(8, 16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 3),
    )


def test_hierarchical_dropout_in_eval_mode_repeats_the_plain_output() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        classifier = two_dropout_classifier().eval()
        x = torch.randn(5, 2, 2, 2)
        out = hierarchical_dropout(classifier, x, branches=2)
    assert out.shape == (4, 5, 3)
    for p in range(4):
        assert torch.equal(out[p], classifier(x))
    assert hierarchical_dropout(classifier, x, branches=3).shape == (9, 5, 3)


def test_hierarchical_dropout_in_train_mode_gives_different_predictions() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        classifier = two_dropout_classifier().train()
        x = torch.randn(5, 2, 2, 2)
        out = hierarchical_dropout(classifier, x, branches=2)
    assert out.shape == (4, 5, 3)
    for p, r in itertools.combinations(range(4), 2):
        assert not torch.allclose(out[p], out[r])
    out.sum().backward()
    assert all(param.grad is not None for param in classifier.parameters())


def test_hierarchical_dropout_masks_are_independent_per_branch() -> None:
    # two dropout layers of p = 0.5 on ones: a unit survives in a branch with probability 1/4
    # (value 2 · 2 = 4); two branches that split at the second layer share the first mask
    # (both survive: 1/2 · 1/4 = 1/8), two that split at the first share nothing (1/16)
    classifier = nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5)).train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = hierarchical_dropout(classifier, torch.ones(8, 2500), branches=2)
    assert out.shape == (4, 8, 2500)
    assert set(out.unique().tolist()) == {0.0, 4.0}
    kept = out != 0
    for p in range(4):
        assert kept[p].float().mean().item() == pytest.approx(0.25, abs=0.02)
    # index p = k1 + 2·k2: p and r share the first layer's branch iff p ≡ r (mod 2)
    for p, r in itertools.combinations(range(4), 2):
        both = (kept[p] & kept[r]).float().mean().item()
        expected = 1 / 8 if p % 2 == r % 2 else 1 / 16
        assert both == pytest.approx(expected, abs=0.015)
    # siblings are both zero where the shared first mask dropped the unit (1/2), or where it
    # kept it and both second masks dropped it (1/2 · 1/4); unrelated branches: (3/4)² = 9/16
    assert (~kept[0] & ~kept[2]).float().mean().item() == pytest.approx(0.625, abs=0.02)
    assert (~kept[0] & ~kept[1]).float().mean().item() == pytest.approx(0.5625, abs=0.02)


def test_hierarchical_dropout_needs_a_dropout_layer() -> None:
    with pytest.raises(ValueError, match="no nn.Dropout"):
        hierarchical_dropout(nn.Sequential(nn.Linear(4, 3)), torch.zeros(2, 4))


# -- LocalClassifier --------------------------------------------------------------------------


def test_local_classifier_pools_to_4x4_convolves_and_classifies() -> None:
    head = LocalClassifier(channels=1, num_classes=2)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.weight[0, 0, 1, 1] = 1.0  # the identity kernel
        head.conv.bias.zero_()
        head.fc.weight.copy_(torch.stack([torch.ones(16), -torch.ones(16)]))
        head.fc.bias.copy_(torch.tensor([0.5, 0.0]))
    image = [[float(8 * r + c) for c in range(8)] for r in range(8)]
    block_max = [
        max(image[2 * br + dr][2 * bc + dc] for dr in range(2) for dc in range(2))
        for br in range(4)
        for bc in range(4)
    ]
    logits = head(torch.tensor(image).view(1, 1, 8, 8))
    assert logits.tolist() == [pytest.approx([sum(block_max) + 0.5, -sum(block_max)])]


@pytest.mark.parametrize("size", [2, 5, 16])
def test_local_classifier_fits_any_map_size(size: int) -> None:
    head = LocalClassifier(channels=3, num_classes=7)
    assert head(torch.randn(4, 3, size, size)).shape == (4, 7)
    assert head.fc.in_features == 16 * 3


# -- mid_losses -------------------------------------------------------------------------------

MID_LOCALS = [LOGITS[0], LOGITS[1]]  # z^(1), z^(2)
MID_FINAL = LOGITS[2]  # z^(3), the network's output


def hand_mid(locals_, final, labels, alpha, beta, temperature) -> list[float]:
    layers = locals_ + [final]
    out = []
    for i in range(len(locals_)):
        per_sample = []
        for b, label in enumerate(labels):
            deeper = layers[i:]
            mean = [sum(z[b][k] for z in deeper) / len(deeper) for k in range(3)]
            target = softmax(mean, temperature)
            hard = cross_entropy(onehot(label, 3), locals_[i][b], temperature)
            soft = cross_entropy(target, locals_[i][b], temperature)
            per_sample.append(alpha * hard + beta * soft)
        out.append(sum(per_sample) / len(per_sample))
    return out


@pytest.mark.parametrize(("alpha", "beta", "temperature"), [(0.05, 0.05, 2.0), (0.5, 0.2, 1.0)])
def test_mid_losses_match_hand_computation(alpha: float, beta: float, temperature: float) -> None:
    losses = mid_losses(
        [torch.tensor(z) for z in MID_LOCALS],
        torch.tensor(MID_FINAL),
        torch.tensor(LABELS),
        alpha,
        beta,
        temperature,
    )
    assert [loss.shape for loss in losses] == [(), ()]
    expected = hand_mid(MID_LOCALS, MID_FINAL, LABELS, alpha, beta, temperature)
    assert [loss.item() for loss in losses] == pytest.approx(expected, rel=1e-5)


def test_mid_soft_target_includes_the_final_logits() -> None:
    labels = torch.tensor(LABELS)
    locals_ = [torch.tensor(z) for z in MID_LOCALS]
    base = mid_losses(locals_, torch.tensor(MID_FINAL), labels, alpha=0.0, beta=1.0)
    moved = mid_losses(locals_, torch.tensor(MID_FINAL) * 3, labels, alpha=0.0, beta=1.0)
    assert all(a.item() != pytest.approx(b.item()) for a, b in zip(base, moved, strict=True))
    # the deepest local layer's target is the mean of itself and the final output
    target = [
        softmax([(a + f) / 2 for a, f in zip(MID_LOCALS[1][b], MID_FINAL[b], strict=True)], 2.0)
        for b in range(2)
    ]
    expected = sum(cross_entropy(target[b], MID_LOCALS[1][b], 2.0) for b in range(2)) / 2
    assert base[1].item() == pytest.approx(expected, rel=1e-5)


def test_mid_losses_teach_only_their_own_layer() -> None:
    alpha, beta, temperature = 0.3, 0.7, 2.0
    locals_ = [torch.tensor(z, requires_grad=True) for z in MID_LOCALS]
    final = torch.tensor(MID_FINAL, requires_grad=True)
    losses = mid_losses(locals_, final, torch.tensor(LABELS), alpha, beta, temperature)
    losses[0].backward()
    assert locals_[1].grad is None and final.grad is None
    # d L^(1) / d z^(1) = [α (ψ(z/T) − y) + β (ψ(z/T) − q)] / (T · B)
    layers = MID_LOCALS + [MID_FINAL]
    for b in range(2):
        mean = [sum(z[b][k] for z in layers) / 3 for k in range(3)]
        q = softmax(mean, temperature)
        p = softmax(MID_LOCALS[0][b], temperature)
        y = onehot(LABELS[b], 3)
        expected = [
            (alpha * (p[k] - y[k]) + beta * (p[k] - q[k])) / (temperature * 2) for k in range(3)
        ]
        assert locals_[0].grad[b].tolist() == pytest.approx(expected, abs=1e-6)


def test_mid_losses_without_local_layers_is_empty() -> None:
    assert mid_losses([], torch.tensor(MID_FINAL), torch.tensor(LABELS)) == []


# -- pull-push --------------------------------------------------------------------------------


def test_channel_std_is_the_population_std_of_each_map() -> None:
    maps = torch.tensor(
        [
            [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 5.0], [5.0, 5.0]]],
            [[[0.0, 2.0], [0.0, 2.0]], [[-1.0, 1.0], [3.0, 9.0]]],
        ]
    )
    expected = [
        [population_std([1, 2, 3, 4]), 0.0],
        [population_std([0, 2, 0, 2]), population_std([-1, 1, 3, 9])],
    ]
    assert channel_std(maps).tolist() == [pytest.approx(row) for row in expected]


def test_channel_std_of_a_constant_map_has_a_finite_gradient() -> None:
    maps = torch.full((2, 1, 3, 3), 5.0, requires_grad=True)
    channel_std(maps).sum().backward()
    assert torch.isfinite(maps.grad).all()


def test_similarity_of_one_hot_labels_after_batch_centring() -> None:
    # labels 0, 1, 2 of 3 classes: e_i − (1/3)·1 has norm² 2/3 and dot −1/3 with the others
    s = similarity_matrix(torch.eye(3))
    expected = [[1.0 if i == j else -0.5 for j in range(3)] for i in range(3)]
    assert s.tolist() == [pytest.approx(row, abs=1e-6) for row in expected]
    # with a repeated label, same-label rows are identical and fully similar
    labels = [0, 0, 1, 2]
    rows = [onehot(label, 3) for label in labels]
    s = similarity_matrix(torch.tensor(rows))
    assert s.tolist() == [pytest.approx(row, abs=1e-6) for row in centred_similarity(rows)]
    assert s[0, 1].item() == pytest.approx(1.0)


def test_similarity_of_a_row_at_the_batch_mean_is_zero_without_nan() -> None:
    # the middle row is the batch mean: after centring it is zero
    vectors = torch.tensor([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]], requires_grad=True)
    s = similarity_matrix(vectors)
    assert s[1].tolist() == [0.0, 0.0, 0.0] and s[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert s[0, 2].item() == pytest.approx(-1.0)
    (s * torch.arange(9.0).view(3, 3)).sum().backward()
    assert torch.isfinite(vectors.grad).all()
    # a single sample is its own batch mean
    assert similarity_matrix(torch.tensor([[1.0, 2.0]])).tolist() == [[0.0]]


def test_pull_push_loss_matches_hand_computation() -> None:
    # B = 3; projected maps [3, 2, 1, 2] (std of two values is |a − b| / 2),
    # images [3, 2, 1, 2], labels 0, 1, 0 of 2 classes
    projected = [
        [[[1.0, 3.0]], [[0.0, 4.0]]],
        [[[2.0, 2.5]], [[1.0, 7.0]]],
        [[[0.0, 6.0]], [[2.0, 2.0]]],
    ]
    images = [
        [[[0.0, 1.0]], [[1.0, 1.0]]],
        [[[0.5, 0.0]], [[0.0, 2.0]]],
        [[[1.0, 3.0]], [[0.5, 1.0]]],
    ]
    labels = [0, 1, 0]
    alpha_pull, alpha_push = 0.3, 0.2

    def stds(batch):
        return [[population_std(ch[0]) for ch in sample] for sample in batch]

    s_features = centred_similarity(stds(projected))
    s_labels = centred_similarity([onehot(label, 2) for label in labels])
    s_inputs = centred_similarity(stds(images))
    expected = alpha_pull * frobenius(s_features, s_labels) - alpha_push * frobenius(
        s_features, s_inputs
    )
    projected_t = torch.tensor(projected, requires_grad=True)
    images_t = torch.tensor(images, requires_grad=True)
    loss = pull_push_loss(
        projected_t,
        images_t,
        torch.nn.functional.one_hot(torch.tensor(labels), 2),
        alpha_pull,
        alpha_push,
    )
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert projected_t.grad is not None and torch.isfinite(projected_t.grad).all()
    assert images_t.grad is None  # the inputs' similarity is a fixed target


def test_pull_push_weights_ramp_linearly_between_our_endpoints() -> None:
    weights = pull_push_weights(4)
    assert weights[0] == (0.01, 0.1) and weights[-1] == (0.1, 0.01)
    assert [w[0] for w in weights] == pytest.approx([0.01, 0.04, 0.07, 0.1])
    assert [w[1] for w in weights] == pytest.approx([0.1, 0.07, 0.04, 0.01])
    assert pull_push_weights(2, pull=(1.0, 3.0), push=(2.0, 0.0)) == [(1.0, 2.0), (3.0, 0.0)]
    assert pull_push_weights(1) == [pytest.approx((0.055, 0.055))]
    with pytest.raises(ValueError, match="num_layers"):
        pull_push_weights(0)


# -- kernel_loss ------------------------------------------------------------------------------


def test_kernel_loss_of_orthogonal_filters_is_zero() -> None:
    # zero-mean rows with unit population std and zero dot product (G = 4)
    rows = [[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]
    weight = torch.tensor(rows).view(3, 1, 2, 2).requires_grad_()
    loss = kernel_loss(weight * 3.0 + 2.0)  # mean and scale are normalised away
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(weight.grad).all()


@pytest.mark.parametrize("filters", [2, 3, 5])
def test_kernel_loss_of_identical_filters_is_sqrt_f_f_minus_1(filters: int) -> None:
    weight = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5, 3.0]).repeat(filters, 1).view(filters, 2, 3, 1)
    assert kernel_loss(weight).item() == pytest.approx(math.sqrt(filters * (filters - 1)), rel=1e-5)


def test_kernel_loss_matches_hand_computation() -> None:
    rows = [[1.0, 2.0, 0.0, -1.0], [0.5, 0.5, 2.0, 1.0], [3.0, -2.0, 1.0, 0.0]]
    normalised = []
    for row in rows:
        mean, std = sum(row) / 4, population_std(row)
        normalised.append([(v - mean) / std for v in row])
    off = [
        sum(a * b for a, b in zip(normalised[i], normalised[j], strict=True)) / 4
        for i in range(3)
        for j in range(3)
        if i != j
    ]
    expected = math.sqrt(sum(c * c for c in off))
    assert kernel_loss(torch.tensor(rows).view(3, 4, 1, 1)).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_kernel_loss_of_a_constant_filter_is_finite() -> None:
    weight = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 2.0, 0.0]]).view(2, 1, 2, 2)
    weight.requires_grad_()
    loss = kernel_loss(weight)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert torch.isfinite(weight.grad).all()
    assert kernel_loss(torch.randn(1, 3, 3, 3)).item() == 0.0

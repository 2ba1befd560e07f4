"""The losses of multi-head (Song & Chai) and intra-model (Fang & Lin) collaborative learning.

Equation numbers are those of Fang & Lin, "Intra-Model Collaborative Learning of Neural
Networks"; Sec. II restates Song & Chai (NeurIPS 2018), Sec. III-A–D adds the four
intra-model collaborations. ψ(z; T) = softmax(z / T) throughout. Every loss computes in float32
(inputs are cast with ``.float()``) so that mixed-precision logits do not lose the small
differences between heads. Consensus targets are detached: a head or layer learns from the
others' agreement, never by pulling that agreement towards itself.

- :func:`scale_gradient`: Song & Chai's back-propagation rescaling (1/H into shared layers).
- :func:`consensus_loss`: Eqs. 1–4, one loss for H heads or K^n hierarchical-dropout branches.
- :func:`hierarchical_dropout`: Sec. III-A, the K^n predictions of a dropout classifier.
- :class:`LocalClassifier` and :func:`mid_losses`: Sec. III-B, Eqs. 5–7.
- :func:`channel_std`, :func:`similarity_matrix`, :func:`pull_push_loss`,
  :func:`pull_push_weights`: Sec. III-C, Eqs. 8–9.
- :func:`kernel_loss`: Sec. III-D, Eq. 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, gradient × factor backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        # a view, not ``x`` itself: autograd needs a new tensor to attach this node to
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass; its gradient multiplied by ``factor`` backwards.

    Song & Chai's back-propagation rescaling: the layers shared by H heads receive the sum of
    H heads' gradients, so the shared activations are passed through ``scale_gradient(h, 1/H)``
    to keep their gradient on the scale of a single head's.
    """
    return _ScaleGradient.apply(x, float(factor))


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"The temperature is {temperature}, but must be > 0.")


def consensus_loss(
    predictions: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> torch.Tensor:
    """Per-sample collaborative loss of P predictions of the same batch (Eqs. 1–4).

    ``predictions`` [P, B, C] are the logits z^(i) of P ≥ 2 heads (Song & Chai, Eq. 3) or
    hierarchical-dropout branches (Fang & Lin, Eq. 4); ``labels`` [B] are class indices.
    Returns [B]:

        (1/P) Σ_i α · J_hard(y, z^(i)) + (1 − α) · J_soft(q^(i), z^(i))

    with J_hard = −Σ_k y_k log ψ_k(z^(i); 1) (Eq. 1, no temperature),
    q^(i) = ψ((1/(P−1)) Σ_{j≠i} z^(j); T) (Eqs. 2, 4), detached, and
    J_soft = −Σ_k q^(i)_k log ψ_k(z^(i); T) — a cross-entropy with no T² factor, as Eqs. 2–4
    write it (unlike the graph's KL edges). Gradient w.r.t. z^(i) (per sample):
    [α (ψ(z^(i); 1) − y) + (1 − α)(ψ(z^(i); T) − q^(i)) / T] / P.
    """
    if predictions.dim() != 3:
        raise ValueError(f"predictions must be [P, B, C], got shape {tuple(predictions.shape)}.")
    heads = predictions.shape[0]
    if heads < 2:
        raise ValueError(f"The consensus loss needs at least 2 predictions, got {heads}.")
    _check_temperature(temperature)
    z = predictions.float()
    classes = z.shape[2]
    hard = F.cross_entropy(z.reshape(-1, classes), labels.repeat(heads), reduction="none").view(
        heads, -1
    )
    # leave-one-out mean as (sum − self): O(P) instead of O(P²) sums
    others = z.detach()
    others = (others.sum(dim=0, keepdim=True) - others) / (heads - 1)
    targets = F.softmax(others / temperature, dim=2)
    soft = -(targets * F.log_softmax(z / temperature, dim=2)).sum(dim=2)
    return (alpha * hard + (1.0 - alpha) * soft).mean(dim=0)


def hierarchical_dropout(
    classifier: nn.Sequential, features: torch.Tensor, branches: int = 2
) -> torch.Tensor:
    """The K^n predictions of a classifier with n dropout layers (Fang & Lin, Sec. III-A).

    Runs ``classifier``'s modules in order on ``features`` [B, ...]; at every ``nn.Dropout``
    the current activations are replicated ``branches`` (K) times along the batch before the
    dropout, so each copy draws its own mask and the branches form a tree (Fig. 1(d)): copies
    split at the first dropout layer share nothing after it, copies split later share the
    earlier masks. Other modules see [copies · B, ...], so Linear, Flatten and BatchNorm1d work
    unchanged (a BatchNorm after a dropout normalises over all the branches together).

    Returns [K^n, B, C]. Prediction p descends from branch k_l at dropout layer l, where
    p = Σ_l k_l · K^(l−1) (the first dropout layer is the least significant digit). Index 0 is
    one genuine dropout sample, the output a plain forward pass would have given. When no
    dropout layer is active (eval mode, or p = 0) the classifier runs once and every
    prediction is that output (an expanded view, no copies).

    Only the classifier's top-level modules are inspected; raises ValueError if none is an
    ``nn.Dropout`` (the caller knows which model that is and says so).
    """
    if branches < 1:
        raise ValueError(f"branches is {branches}, but must be >= 1.")
    modules = list(classifier)
    dropouts = [m for m in modules if isinstance(m, nn.Dropout)]
    if not dropouts:
        raise ValueError("The classifier has no nn.Dropout layer to branch at.")
    copies = branches ** len(dropouts)
    batch = features.shape[0]
    if not any(m.training and m.p > 0 for m in dropouts):
        out = classifier(features)
        return out.unsqueeze(0).expand(copies, *out.shape)
    x = features
    for module in modules:
        if isinstance(module, nn.Dropout):
            # new copies outermost, so every older branch index repeats within each new block
            x = x.repeat(branches, *([1] * (x.dim() - 1)))
        x = module(x)
    return x.reshape(copies, batch, *x.shape[1:])


class LocalClassifier(nn.Module):
    """A local classifier on an intermediate feature map (Fang & Lin, Sec. III-B).

    The paper's "max pooling layer, a 3×3 convolution and a fully connected layer":
    AdaptiveMaxPool2d(4) → Conv2d(C, C, 3, padding=1) → ReLU → Linear(16·C, classes).
    The paper gives no pooling size; a fixed 4×4 output keeps the FC layer small (16·C inputs)
    whatever the map size, so the same module fits every layer of a network (maps smaller than
    4×4 are upsampled by repetition). The ReLU is ours too: without a nonlinearity the
    convolution and the FC layer would collapse into one linear map.
    """

    POOLED = 4

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveMaxPool2d(self.POOLED)
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.fc = nn.Linear(channels * self.POOLED * self.POOLED, num_classes)

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → logits [B, classes]."""
        x = F.relu(self.conv(self.pool(feature_maps)))
        return self.fc(torch.flatten(x, 1))


def mid_losses(
    local_logits: Sequence[torch.Tensor],
    final_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.05,
    beta: float = 0.05,
    temperature: float = 2.0,
) -> list[torch.Tensor]:
    """Batch-mean losses L_mid^(i) of the local classifiers, shallow to deep (Eqs. 5–7).

    ``local_logits`` are z^(1..N−1) [B, C] of the intermediate layers in network order;
    ``final_logits`` is z^(N), the network's own output. For each intermediate layer i:

        L_mid^(i) = α · J_hard^mid(y, z^(i)) + β · J_soft^mid(q^(i), z^(i))

    J_hard^mid = −Σ_k y_k log ψ_k(z^(i); T) — Eq. 5 applies T to the hard term too, and so do
    we. q^(i) = ψ(mean_{j=i..N} z^(j); T), detached: the layer learns from itself and every
    deeper layer, the final output included. Eq. 6 writes the normaliser 1/(N−i) in front of a
    sum of N−i+1 terms; we take the mean over those N−i+1 terms (a sum over N−i+1 divided by
    N−i is no average, and with T it would sharpen the target more for shallow layers).
    J_soft^mid = −Σ_k q^(i)_k log ψ_k(z^(i); T). One scalar per intermediate layer.
    """
    _check_temperature(temperature)
    if not local_logits:
        return []
    locals_ = [z.float() for z in local_logits]
    stacked = torch.stack([z.detach() for z in locals_] + [final_logits.detach().float()])
    # suffix sums Σ_{j ≥ i} z^(j) in one pass, deepest layer first
    suffix = stacked.flip(0).cumsum(dim=0).flip(0)
    layers = stacked.shape[0]
    losses = []
    for i, z in enumerate(locals_):
        target = F.softmax(suffix[i] / ((layers - i) * temperature), dim=1)
        log_probs = F.log_softmax(z / temperature, dim=1)
        hard = F.nll_loss(log_probs, labels)
        soft = -(target * log_probs).sum(dim=1).mean()
        losses.append(alpha * hard + beta * soft)
    return losses


def channel_std(feature_maps: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, C]: each channel's spatial standard deviation (Sec. III-C).

    The paper's low-dimensional representation z_{i,c} = σ(d_{i,c}). Population std (divide by
    H·W): it describes the map, it does not estimate anything.
    """
    return feature_maps.float().std(dim=(2, 3), correction=0)


def similarity_matrix(vectors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """[B, D] → [B, B] cosine similarities of the mean-centred rows (Eq. 8).

    "Mean-centred" is read as subtracting the mini-batch mean vector (the mean over the B
    rows), so S compares samples relative to the batch rather than to the origin; without it
    every non-negative representation (stds, one-hot labels) would be positively similar.
    A row equal to the batch mean (norm ≤ ``eps``) has similarity 0 to everything, itself
    included, and receives no gradient (cosine similarity has no direction to follow there).
    """
    z = vectors.float()
    centred = z - z.mean(dim=0, keepdim=True)
    norms = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    # torch.where, not a clamp alone: x / eps near 0 would pass a 1/eps gradient
    unit = torch.where(norms > eps, centred / norms.clamp_min(eps), torch.zeros_like(centred))
    return unit @ unit.T


def pull_push_loss(
    projected: torch.Tensor,
    inputs: torch.Tensor,
    onehot: torch.Tensor,
    alpha_pull: float,
    alpha_push: float,
) -> torch.Tensor:
    """Scalar L_pull-push of one intermediate layer (Eq. 9).

        α_pull · ‖S(g(h)) − S(y)‖_F − α_push · ‖S(g(h)) − S(x)‖_F

    ``projected`` is g_i(h^(i)) [B, C, H, W] (the projection convolution's output),
    ``inputs`` the images x [B, C_in, H, W], ``onehot`` the targets y [B, classes]. Feature
    maps and images are both represented by their per-channel std (:func:`channel_std`), the
    one-hot rows are used as they are; S is :func:`similarity_matrix`. The two targets S(y)
    and S(x) are detached: only the projected representation moves.
    """
    similarity = similarity_matrix(channel_std(projected))
    to_labels = similarity_matrix(onehot.detach().float())
    to_inputs = similarity_matrix(channel_std(inputs.detach()))
    pull = torch.linalg.matrix_norm(similarity - to_labels)
    push = torch.linalg.matrix_norm(similarity - to_inputs)
    return alpha_pull * pull - alpha_push * push


def pull_push_weights(
    num_layers: int,
    pull: tuple[float, float] = (0.01, 0.1),
    push: tuple[float, float] = (0.1, 0.01),
) -> list[tuple[float, float]]:
    """(α_pull, α_push) for each of ``num_layers`` layers, from inputs to outputs.

    Sec. III-C: "linearly increase α_pull and decrease α_push through all the layers from
    inputs to outputs". The paper gives no values; ``pull`` and ``push`` are our (first layer,
    last layer) weights. Layer l of L gets pull[0] + (pull[1] − pull[0]) · l / (L − 1), and
    likewise for push, the endpoints exactly. A single layer is as near the inputs as the
    outputs, so it gets the midpoint of each ramp (which is also the mean weight of any
    longer ramp).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers is {num_layers}, but must be >= 1.")

    def ramp(ends: tuple[float, float], t: float) -> float:
        # (1 − t)·a + t·b hits both ends exactly; a + (b − a)·t may miss b by an ulp
        return (1.0 - t) * ends[0] + t * ends[1]

    if num_layers == 1:
        return [(ramp(pull, 0.5), ramp(push, 0.5))]
    steps = [layer / (num_layers - 1) for layer in range(num_layers)]
    return [(ramp(pull, t), ramp(push, t)) for t in steps]


def kernel_loss(weight: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scalar L_kernel = ‖C − diag(C)‖_F of one convolution's kernel (Eq. 10).

    ``weight`` [F, C, kh, kw] is reshaped to W^M [F, G] (G = C·kh·kw); each row is made zero-
    mean and divided by its population std (a constant filter, std ≤ ``eps``, becomes a zero
    row); C_ij = (1/G) Σ_k W̃_ik W̃_jk is then the correlation of filters i and j, and the loss
    is the Frobenius norm of its off-diagonal part: 0 for mutually orthogonal filters,
    sqrt(F(F − 1)) for F identical ones.
    """
    rows = weight.float().reshape(weight.shape[0], -1)
    centred = rows - rows.mean(dim=1, keepdim=True)
    variance = centred.pow(2).mean(dim=1, keepdim=True)
    # clamp before the sqrt: sqrt'(0) is infinite and would turn a zero gradient into NaN
    std = variance.clamp_min(eps * eps).sqrt()
    normalised = torch.where(std > eps, centred / std, torch.zeros_like(centred))
    correlation = normalised @ normalised.T / rows.shape[1]
    off_diagonal = correlation - torch.diag_embed(correlation.diagonal())
    return torch.linalg.matrix_norm(off_diagonal)

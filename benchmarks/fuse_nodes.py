"""Does fusing K nodes of one architecture into one computation speed up a training step?

    python benchmarks/fuse_nodes.py --device cpu          # tiny_cnn and resnet32, K = 2 and 3
    python benchmarks/fuse_nodes.py --device cuda         # the same on the GPU, bf16 autocast
    python benchmarks/fuse_nodes.py --device cuda --compile   # and the loop under torch.compile

A DCL step sends the same batch through every node, and the trainer runs the nodes one after
another: K forward and backward passes of a small CIFAR network, each hundreds of kernels
over a 64-image batch. On a GPU such kernels are too small to fill the device, so a step's
time is mostly launch and scheduling overhead paid K times. When the nodes share an
architecture (``dml:3:resnet32``, most of the paper's graphs), the K networks can run as one
computation: every layer one kernel for all K nodes, K times wider. Whether that pays depends
on the device: on a GPU it should (fewer, fuller launches); on a CPU the arithmetic, not the
launches, dominates, and grouped or batched convolutions are less tuned than plain ones
(oneDNN), so the fused step may well be slower there.

One step = forward of every node, cross-entropy of each node against the labels, one backward
of the summed losses, gradients cleared (no optimizer step: SGD is elementwise and costs the
same whichever layout holds the weights). Three implementations, on the same weights:

- ``loop``: the trainer's way, each node's model called in turn.
- ``vmap``: ``torch.func.functional_call`` of a meta-device copy of the model under
  ``torch.func.vmap(in_dims=(0, 0, None), randomness="different")``. The per-node parameters
  are stacked with ``torch.stack`` every step, so the gradients land on the per-node models
  exactly as the loop's do, and the batch-norm running statistics updated under vmap are
  copied back into the per-node buffers after the forward. The fused copy pools with a mean
  over H, W instead of ``AdaptiveAvgPool2d(1)`` (same value; the latter has no batching rule
  and falls back to a slow per-node loop with a warning).
- ``grouped``: one network built from the K models' weights: every convolution grouped
  (``groups`` × K, channels × K; the first convolution reads the shared input with K × its
  output channels), batch norm over K × C channels (per channel, so exact), linear layers as a
  batched matrix product on a (K, out, in) weight, option-A shortcuts padded per node. It owns
  its weights (a trainer would step it directly); :meth:`Grouped.node_tensors` slices weights,
  gradients and running statistics back per node. Models this cannot express (any module
  outside a known list) raise :class:`NotGroupable`.

``--compile`` adds a fourth, ``compiled``: the loop's K forwards under ``torch.compile``
(inductor; the warm-up, which includes compiling, is timed separately in the JSON).

Synthetic CIFAR-shaped batch (``--batch`` × 3 × 32 × 32, 100 classes), channels_last like the
trainer, bf16 autocast on CUDA. After a warm-up, the three implementations alternate within
each of ``--reps`` repetitions of ``--steps`` steps; reported: median ms per step and, per fused
method, the ratio of medians loop / fused (> 1: the fused step is faster).

Writes benchmarks/results/fuse_nodes-<device>-<date>.json unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import default_path, device_name, write_report  # noqa: E402

from dcl_search.models import (  # noqa: E402
    MLP,
    VGG,
    CifarResNet,
    ResNet18,
    TinyCNN,
    WideResNet,
    build_model,
)
from dcl_search.models._resnet import BasicBlock, _ShortcutA  # noqa: E402
from dcl_search.models._vgg import _ConvBlock  # noqa: E402
from dcl_search.models._wide_resnet import _PreActBlock  # noqa: E402

CLASSES = 100
IMPLEMENTATIONS = ("loop", "vmap", "grouped")


def _per_node_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each node: ``logits`` (K, B, C) → (K,)."""
    k, b, c = logits.shape
    flat = F.cross_entropy(logits.reshape(k * b, c), y.repeat(k), reduction="none")
    return flat.view(k, b).mean(1)


class Loop:
    """The trainer's way: each node's model in turn, one backward of the summed losses."""

    name = "loop"

    def __init__(self, models: list[nn.Module]) -> None:
        self.models = models

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [model(x) for model in self.models]

    def losses(self, logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.cross_entropy(out, y) for out in logits])

    def zero_grad(self) -> None:
        for model in self.models:
            model.zero_grad(set_to_none=True)


class Compiled(Loop):
    """The loop with the K forwards compiled into one graph by ``torch.compile`` (inductor):
    fused elementwise kernels, and on CUDA fewer launches. ``--compile`` adds it."""

    name = "compiled"

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__(models)
        self._compiled = torch.compile(super().forward)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._compiled(x)


class _GlobalMeanPool(nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean over H, W: same values, and vmap has a rule for it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1), keepdim=True)


def _replace_global_pools(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
            setattr(module, name, _GlobalMeanPool())
        else:
            _replace_global_pools(child)


class Vmap:
    """The K models as one vmapped functional call over parameters stacked every step."""

    name = "vmap"

    def __init__(self, models: list[nn.Module]) -> None:
        self.models = models
        template = copy.deepcopy(models[0]).to("meta")
        _replace_global_pools(template)
        self.param_names = [name for name, _ in models[0].named_parameters()]
        self.buffer_names = [name for name, _ in models[0].named_buffers()]
        params = [dict(m.named_parameters()) for m in models]
        buffers = [dict(m.named_buffers()) for m in models]
        self.params = [[p[name] for p in params] for name in self.param_names]
        self.buffers = [[b[name] for b in buffers] for name in self.buffer_names]

        def call(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(template, (p, b), (x,))

        self._call = vmap(call, in_dims=(0, 0, None), randomness="different")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # stacking the live Parameters (not detached copies) keeps the stack differentiable:
        # backward un-stacks the gradients onto each node's own parameters
        params = {n: torch.stack(ps) for n, ps in zip(self.param_names, self.params, strict=True)}
        buffers = {
            n: torch.stack(bs) for n, bs in zip(self.buffer_names, self.buffers, strict=True)
        }
        logits = self._call(params, buffers, x)
        if self.models[0].training:  # batch norm updated the stacked running statistics
            with torch.no_grad():
                destinations = [b for bs in self.buffers for b in bs]
                sources = [s for n in self.buffer_names for s in buffers[n].unbind(0)]
                torch._foreach_copy_(destinations, sources)
        return logits

    def losses(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_node_losses(logits, y)

    def zero_grad(self) -> None:
        for model in self.models:
            model.zero_grad(set_to_none=True)


class NotGroupable(ValueError):
    """The models cannot be expressed as one grouped network."""


class _GroupedLinear(nn.Module):
    """K linear layers on features laid out (B, K × in): a batched matmul on (K, out, in)."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        super().__init__()
        self.k = len(linears)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]).clone())
        self.bias = (
            nn.Parameter(torch.stack([m.bias.detach() for m in linears]).clone())
            if linears[0].bias is not None
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("bki,koi->bko", x.reshape(x.shape[0], self.k, -1), self.weight)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(x.shape[0], -1)


class _GroupedShortcutA(nn.Module):
    """Option-A shortcut of K nodes: subsample, then zero-pad each node's channels."""

    def __init__(self, shortcut: _ShortcutA, k: int) -> None:
        super().__init__()
        self.k, self.stride, self.pad = k, shortcut.stride, shortcut.pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        b, _, h, w = x.shape
        # channels last in a (B, H, W, K, C) view: pad C per node, keep NHWC for the sum
        nhwc = x.permute(0, 2, 3, 1).reshape(b, h, w, self.k, -1)
        return F.pad(nhwc, self.pad).reshape(b, h, w, -1).permute(0, 3, 1, 2)


def _cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat([t.detach() for t in tensors])


def _group_conv(convs: list[nn.Conv2d], shared_input: bool) -> nn.Conv2d:
    c, k = convs[0], len(convs)
    if c.padding_mode != "zeros" or (shared_input and c.groups != 1):
        raise NotGroupable(f"cannot group {c}")
    weight = _cat([m.weight for m in convs])
    grouped = nn.Conv2d(
        c.in_channels if shared_input else k * c.in_channels,
        k * c.out_channels,
        c.kernel_size,
        c.stride,
        c.padding,
        c.dilation,
        c.groups if shared_input else k * c.groups,
        bias=c.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        grouped.weight.copy_(weight)
        if c.bias is not None:
            grouped.bias.copy_(_cat([m.bias for m in convs]))
    return grouped


def _group_linear(linears: list[nn.Linear], shared_input: bool) -> nn.Module:
    if not shared_input:
        return _GroupedLinear(linears)
    first = linears[0]
    weight = _cat([m.weight for m in linears])
    grouped = nn.Linear(
        first.in_features,
        weight.shape[0],
        bias=first.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        grouped.weight.copy_(weight)
        if first.bias is not None:
            grouped.bias.copy_(_cat([m.bias for m in linears]))
    return grouped


def _group_batch_norm(norms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    n = norms[0]
    grouped = nn.BatchNorm2d(
        len(norms) * n.num_features,
        n.eps,
        n.momentum,
        n.affine,
        n.track_running_stats,
        device=next(iter([*n.parameters(), *n.buffers()])).device,
    )
    with torch.no_grad():
        if n.affine:
            grouped.weight.copy_(_cat([m.weight for m in norms]))
            grouped.bias.copy_(_cat([m.bias for m in norms]))
        if n.track_running_stats:
            grouped.running_mean.copy_(_cat([m.running_mean for m in norms]))
            grouped.running_var.copy_(_cat([m.running_var for m in norms]))
            grouped.num_batches_tracked.copy_(n.num_batches_tracked)
    return grouped


# modules whose forward only composes their children with per-channel or elementwise steps
# (sums, ReLU, pooling, flatten of N×C×H×W, which keeps each node's channels contiguous), and
# which read the input first with the first Conv2d / Linear they register
_CONTAINERS = (
    nn.Sequential,
    TinyCNN,
    MLP,
    CifarResNet,
    BasicBlock,
    VGG,
    _ConvBlock,
    WideResNet,
    _PreActBlock,
    ResNet18,
)
# parameter-free, per-channel or elementwise: the same module serves the K × C channels
_KEPT = (nn.ReLU, nn.Identity, nn.Flatten, nn.Dropout, nn.AdaptiveAvgPool2d, nn.MaxPool2d)


def group_models(models: list[nn.Module]) -> nn.Module:
    """One network computing the K models at once on K × the channels; ``out[:, k*C:(k+1)*C]``
    is model k's logits. Raises :class:`NotGroupable` for modules it does not know."""
    first = models[0]
    if any(repr(m) != repr(first) for m in models[1:]):
        raise NotGroupable("the models differ in architecture")
    fused = copy.deepcopy(first)
    shared_input = True  # the first Conv2d / Linear reads the shared input
    modules = [dict(m.named_modules()) for m in models]
    for name, module in first.named_modules():
        same = [m[name] for m in modules]
        if isinstance(module, nn.Conv2d):
            grouped: nn.Module = _group_conv(same, shared_input)
            shared_input = False
        elif isinstance(module, nn.Linear):
            grouped = _group_linear(same, shared_input)
            shared_input = False
        elif isinstance(module, nn.BatchNorm2d) and type(module) is nn.BatchNorm2d:
            grouped = _group_batch_norm(same)
        elif isinstance(module, _ShortcutA):
            grouped = _GroupedShortcutA(module, len(models))
        elif type(module) in _CONTAINERS or type(module) in _KEPT:
            continue
        else:
            raise NotGroupable(
                f"cannot group {type(first).__name__}: module {name or '<root>'} "
                f"({type(module).__name__}) is not a known per-channel layer"
            )
        fused.set_submodule(name, grouped)
    return fused


class Grouped:
    """The K models as one network with grouped convolutions (see :func:`group_models`)."""

    name = "grouped"

    def __init__(self, models: list[nn.Module], channels_last: bool = True) -> None:
        self.k = len(models)
        self.net = group_models(models).train(models[0].training)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.like = dict(models[0].state_dict(keep_vars=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.view(out.shape[0], self.k, -1).transpose(0, 1)

    def losses(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_node_losses(logits, y)

    def zero_grad(self) -> None:
        self.net.zero_grad(set_to_none=True)

    def _slice(self, fused: torch.Tensor, like: torch.Tensor, node: int) -> torch.Tensor:
        if fused.shape == like.shape:  # num_batches_tracked: one count for all nodes
            return fused
        if fused.dim() == like.dim() + 1:  # (K, ...) of a grouped linear layer
            return fused[node]
        return fused.chunk(self.k, 0)[node]  # K × out channels of a conv or batch norm

    def node_tensors(self, node: int, grads: bool = False) -> dict[str, torch.Tensor | None]:
        """Node ``node``'s weights and buffers (its state_dict keys), or the weights' gradients."""
        out: dict[str, torch.Tensor | None] = {}
        for name, fused in self.net.state_dict(keep_vars=True).items():
            if grads:
                if not isinstance(fused, nn.Parameter):
                    continue
                out[name] = (
                    None if fused.grad is None else self._slice(fused.grad, self.like[name], node)
                )
            else:
                out[name] = self._slice(fused.detach(), self.like[name], node)
        return out


def build_nodes(
    model: str, k: int, device: str, channels_last: bool = True, seed: int = 0
) -> list[nn.Module]:
    """K independently initialised models, as the trainer builds its nodes."""
    torch.manual_seed(seed)
    models = [build_model(model, CLASSES, 3).to(device) for _ in range(k)]
    if channels_last:
        models = [m.to(memory_format=torch.channels_last) for m in models]
    return [m.train() for m in models]


def make_implementation(name: str, models: list[nn.Module], channels_last: bool = True):
    if name == "loop":
        return Loop(models)
    if name == "vmap":
        return Vmap(models)
    if name == "compiled":
        return Compiled(models)
    return Grouped(models, channels_last)


def train_step(impl, x: torch.Tensor, y: torch.Tensor, autocast_dtype=None):
    """Forward, per-node cross-entropy, one backward of the sum; returns (logits, losses).
    Gradients are left in place (call ``impl.zero_grad()`` before the next step)."""
    if autocast_dtype is None:
        logits = impl.forward(x)
        losses = impl.losses(logits, y)
    else:
        with torch.autocast(x.device.type, dtype=autocast_dtype):
            logits = impl.forward(x)
            losses = impl.losses(logits, y)
    losses.sum().backward()
    return logits, losses


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _time(impl, x, y, steps: int, device: str, autocast_dtype) -> float:
    """Milliseconds per step over ``steps`` steps."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(impl, x, y, autocast_dtype)
        impl.zero_grad()
    _sync(device)
    return 1000 * (time.perf_counter() - start) / steps


def bench_one(model: str, k: int, args, device: str) -> dict:
    autocast_dtype = torch.bfloat16 if device == "cuda" else None
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=generator).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (args.batch,), generator=generator).to(device)
    models = build_nodes(model, k, device)
    impls = []
    skipped = {}
    for name in IMPLEMENTATIONS + (("compiled",) if args.compile else ()):
        try:
            impls.append(make_implementation(name, models))
        except NotGroupable as error:
            skipped[name] = str(error)
            print(f"{model} K={k}: {name} skipped: {error}", flush=True)
    warm_up_seconds = {}
    for impl in impls:  # warm-up: kernels, allocator, oneDNN / cuDNN algorithms, compilation
        started = time.perf_counter()
        _time(impl, x, y, max(2, args.steps // 5), device, autocast_dtype)
        warm_up_seconds[impl.name] = round(time.perf_counter() - started, 2)
    ms: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for rep in range(args.reps):
        for impl in impls:
            ms[impl.name].append(round(_time(impl, x, y, args.steps, device, autocast_dtype), 3))
        line = "  ".join(f"{n} {v[-1]:8.2f}" for n, v in ms.items())
        print(f"{model} K={k} rep {rep + 1}/{args.reps}: {line} ms/step", flush=True)
    medians = {name: statistics.median(values) for name, values in ms.items()}
    return {
        "model": model,
        "nodes": k,
        "ms_per_step": ms,
        "median_ms_per_step": medians,
        "min_ms_per_step": {name: min(values) for name, values in ms.items()},
        "speedup_vs_loop": {
            name: medians["loop"] / medians[name] for name in medians if name != "loop"
        },
        "warm_up_seconds": warm_up_seconds,
        "skipped": skipped,
    }


def _table(rows: list[dict]) -> str:
    names = list(dict.fromkeys(name for row in rows for name in row["median_ms_per_step"]))
    fused = [name for name in names if name != "loop"]
    head = f"{'model':<10} {'K':>2} " + " ".join(f"{n + ' ms':>11}" for n in names)
    lines = [head + " " + " ".join(f"{n + ' x':>11}" for n in fused)]
    for row in rows:
        med, ratio = row["median_ms_per_step"], row["speedup_vs_loop"]
        cells = [f"{med[n]:11.2f}" if n in med else f"{'-':>11}" for n in names]
        cells += [f"{ratio[n]:11.2f}" if n in ratio else f"{'-':>11}" for n in fused]
        lines.append(f"{row['model']:<10} {row['nodes']:>2} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="tiny_cnn,resnet32")
    parser.add_argument("--nodes", default="2,3", help="comma-separated numbers of nodes K")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="steps per measurement")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--compile", action="store_true", help="also time the loop under torch.compile"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = args.device
    rows = [
        bench_one(model, int(k), args, device)
        for model in args.models.split(",")
        for k in args.nodes.split(",")
    ]
    name = device_name(device)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": name,
        "torch": torch.__version__,
        "settings": {
            "device": device,
            "batch": args.batch,
            "steps": args.steps,
            "reps": args.reps,
            "classes": CLASSES,
            "image": [3, 32, 32],
            "channels_last": True,
            "autocast": "bf16" if device == "cuda" else None,
        },
        "results": rows,
    }
    print(
        f"\n{name}, torch {torch.__version__}, batch {args.batch}, {args.reps} reps of {args.steps} steps"
    )
    print(_table(rows))
    print("(median ms per step; x = loop median / fused median, > 1: fused is faster)")
    write_report(report, args.out or default_path(f"fuse_nodes-{device}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

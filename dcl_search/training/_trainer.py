"""The collaborative trainer: every node of a knowledge-transfer graph trained together.

One step (Minami et al., ACCV 2020, Algorithm 1): the same augmented batch goes through every
node; L_t = Σ_s G_{s,t}(ℓ_{s,t}) for each trainable node t; Σ_t L_t is back-propagated once
(sources are detached, so each node still receives only its own gradient) and one optimizer
steps every trainable node. Frozen nodes run in eval mode under no_grad and never change.

Speed without changing the recipe: the dataset sits on the device as uint8 tensors and batches
are index slices of a device-side permutation, augmented there; metrics accumulate on the
device and reach the host once per epoch; channels_last everywhere, bf16 autocast on CUDA and
on CPUs with bf16 matrix units (AMX).
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import torch

from dcl_search._errors import TrainingError
from dcl_search.collab import CollaborativeNode, NodeOutput
from dcl_search.datasets import DatasetSplits, ImageSet, uniform_label_noise
from dcl_search.gates import GraphLoss
from dcl_search.graphs import gate_of, graph_hash, graph_to_node_link
from dcl_search.models import build_model
from dcl_search.training._augment import Normalizer, random_crop_flip
from dcl_search.training._checkpoint import atomic_torch_save, load_frozen_weights
from dcl_search.training._label_noise import LabelNoise
from dcl_search.training._metrics import Accuracy, EpochMetrics
from dcl_search.training._recipe import Recipe, learning_rate
from dcl_search.training._sgd import EagerSGD
from dcl_search.training._step_graph import CaptureError, CudaGraphCapture, StepGraph

CHECKPOINT_FORMAT = "dcl-search-checkpoint"
CHECKPOINT_VERSION = 1


def _inference(model: torch.nn.Module) -> torch.nn.Module:
    """What a node deploys: the plain base network of a collaborative node."""
    return model.inference_model() if isinstance(model, CollaborativeNode) else model


def _cpp_compiler() -> str | None:
    candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
    return next((path for c in candidates if c and (path := shutil.which(c))), None)


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bf16 in hardware tiles (Intel AMX), where oneDNN's bf16
    convolutions made a training step on 32×32 images 1.4–1.7× as fast as fp32 (README,
    Performance). Elsewhere bf16 is emulated or only vectorised, not measured here, so
    ``precision: auto`` keeps fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the fallback
    try:
        return bool(probe and probe())
    except RuntimeError:
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """What a recipe's ``precision`` trains in on ``device``: bf16 autocast, or None for fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" or cpu_has_bf16_matrix_units() else None
    return torch.bfloat16 if precision == "bf16" else None


def precision_name(dtype: torch.dtype | None) -> str:
    """How summaries and headers name an :func:`autocast_dtype`: ``bf16`` or ``fp32``."""
    return "bf16" if dtype is torch.bfloat16 else "fp32"


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``, checked against what torch sees on this machine."""
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise TrainingError(f"--device {device}: unknown device; use cpu, cuda or cuda:N") from None
    if resolved.type not in ("cpu", "cuda"):
        raise TrainingError(f"--device {device}: not supported; use cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(
                f"--device {device} was asked for, but torch sees no CUDA device here"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise TrainingError(
                f"--device {device}: torch sees {torch.cuda.device_count()} CUDA devices "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})"
            )
    return resolved


class CollaborativeTrainer:
    """Trains all nodes of a validated graph on ``data`` with ``recipe``.

    Iterate :meth:`train_epochs` to train; it yields an :class:`EpochMetrics` after every epoch
    (the caller checkpoints, logs or reports). Frozen nodes must carry a ``checkpoint`` path
    (see :func:`dcl_search.training.resolve_frozen_checkpoints`).
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        data: DatasetSplits,
        recipe: Recipe,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        label_noise: LabelNoise | None = None,
    ) -> None:
        self.graph, self.data, self.recipe = graph, data, recipe
        self.device = resolve_device(device)
        self.seed = seed
        self.label_noise = label_noise or LabelNoise()
        self.num_nodes = graph.number_of_nodes()
        self.frozen = [bool(graph.nodes[n].get("frozen", False)) for n in range(self.num_nodes)]
        on_cuda = self.device.type == "cuda"
        self.autocast_dtype = autocast_dtype(recipe.precision, self.device)
        # oneDNN and cuDNN both run these convolutions faster in NHWC (CPU: +33% measured, benchmarks/)
        self.channels_last = {"auto": True, "on": True, "off": False}[recipe.channels_last]

        torch.manual_seed(seed)  # model initialisation is part of the seeded run
        self.models = [self._build_node(n) for n in range(self.num_nodes)]
        if recipe.compile != "off" and self.device.type == "cpu" and not _cpp_compiler():
            # inductor would fail only at the first step, deep in a traceback
            raise TrainingError(
                f"the recipe's compile: {recipe.compile} needs a C++ compiler on the CPU (found "
                "none of $CXX, g++, clang++, c++); install one or set compile: off"
            )
        self._train_calls = [self._training_call(model) for model in self.models]
        self.loss = GraphLoss(
            self.num_nodes,
            {(s, t): gate for s, t, gate in graph.edges(data="gate")},
            temperature=recipe.temperature,
        )
        self._run_nodes = [
            n for n in range(self.num_nodes) if not self.frozen[n] or n in self.loss.needed_sources
        ]
        trainable = [
            p for n, m in enumerate(self.models) if not self.frozen[n] for p in m.parameters()
        ]
        opt = recipe.optimizer
        # torch.optim.SGD's code without its wrappers' import of torch._dynamo (1.1-1.5 s and
        # 150 MB in each of a search's workers)
        self.optimizer = EagerSGD(
            trainable,
            lr=opt.lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            weight_decay=opt.weight_decay,
            # one kernel for all nodes' parameters on CUDA; on the CPU one multi-tensor update
            # per step instead of one per parameter (the same arithmetic, ~0.1 ms a step less)
            **({"fused": True} if on_cuda else {"foreach": True}),
        )
        self.train_x = data.train.images.to(self.device)
        self.clean_train_y = data.train.labels.to(self.device)
        self.normalize = Normalizer(data.mean, data.std, self.device)
        self.steps_per_epoch = len(data.train) // recipe.batch_size
        if self.steps_per_epoch < 1:
            raise TrainingError(
                f"the training split has {len(data.train)} images, fewer than one batch of {recipe.batch_size}"
            )
        self.total_steps = self.steps_per_epoch * recipe.epochs  # k_end of the linear gates
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.noise_generator = torch.Generator(device=self.device).manual_seed(seed + 1_000_003)
        self.epoch = 0
        self.step = 0
        self.elapsed = 0.0
        self.history: list[EpochMetrics] = []
        self._fixed_noisy_y: torch.Tensor | None = None
        self._identity: dict[str, Any] | None = None
        # node_streams: on, a CUDA stream per node: autograd runs each backward op on its
        # forward's stream, so the nodes' backward passes overlap too
        self.node_streams: list[torch.cuda.Stream] | None = None
        if recipe.node_streams == "on" and on_cuda:
            self.node_streams = [torch.cuda.Stream(self.device) for _ in range(self.num_nodes)]
        # cuda_graph: on applies to CUDA devices; on the CPU the step runs as without it
        self.step_graph: StepGraph | None = None
        self._replays_before_fallback = 0  # kept when a failed re-capture drops the graph
        if recipe.cuda_graph == "on" and on_cuda:
            self.step_graph = StepGraph(
                self._step_body, self.num_nodes, CudaGraphCapture(self.device)
            )

    # -- construction -------------------------------------------------------------------

    def _build_node(self, node: int) -> torch.nn.Module:
        attrs = self.graph.nodes[node]
        classes, channels = self.data.num_classes, self.data.in_channels
        if attrs.get("options") is not None:
            model = CollaborativeNode(attrs["model"], attrs["options"], classes, channels)
        else:
            model = build_model(attrs["model"], classes, channels)
        if self.frozen[node]:
            if not attrs.get("checkpoint"):
                raise TrainingError(f"node {node} is frozen but has no checkpoint to load")
            load_frozen_weights(model, Path(attrs["checkpoint"]), node)
            model.requires_grad_(False)
            model.eval()
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def _training_call(self, model: torch.nn.Module):
        """What a training step calls for a node: the model, or with ``compile`` the model under
        torch.compile. Evaluation and checkpoints use the plain model (same parameters, and its
        state_dict keys stay free of torch.compile's prefix). Compiled code is cached in memory
        for the next trial of the same shapes in this process and on disk (inductor's cache)
        for other processes on this machine."""
        mode = self.recipe.compile
        if mode == "off" or isinstance(model, CollaborativeNode):
            return model  # a collaborative node's train_forward is no module call to compile
        return torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)

    # -- training -------------------------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        # a CUDA graph must not record autocast's cache of cast weights (torch's docs)
        return torch.autocast(
            self.device.type, dtype=self.autocast_dtype, cache_enabled=self.step_graph is None
        )

    def _epoch_labels(self) -> torch.Tensor:
        noise = self.label_noise
        if noise.fraction == 0:
            return self.clean_train_y
        if noise.mode == "fixed":
            if self._fixed_noisy_y is None:
                fixed = torch.Generator(device=self.device).manual_seed(self.seed + 2_000_003)
                self._fixed_noisy_y = uniform_label_noise(
                    self.clean_train_y, noise.fraction, self.data.num_classes, fixed
                )
            return self._fixed_noisy_y
        return uniform_label_noise(
            self.clean_train_y, noise.fraction, self.data.num_classes, self.noise_generator
        )

    def _forward_all(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[list[torch.Tensor | None], dict[int, NodeOutput]]:
        logits: list[torch.Tensor | None] = [None] * self.num_nodes
        collaborative: dict[int, NodeOutput] = {}
        main = torch.cuda.current_stream(self.device) if self.node_streams else None
        with self._autocast():
            for node in self._run_nodes:
                with self._node_stream(node, main):
                    model = self.models[node]
                    if self.frozen[node]:
                        with torch.no_grad():
                            logits[node] = self._train_calls[node](x)
                    elif isinstance(model, CollaborativeNode):
                        collaborative[node] = model.train_forward(x, y)
                        logits[node] = collaborative[node].logits
                    else:
                        logits[node] = self._train_calls[node](x)
        if main is not None:
            for node in self._run_nodes:  # the losses read every node's logits
                main.wait_stream(self.node_streams[node])
        return logits, collaborative

    def _node_stream(self, node: int, main: torch.cuda.Stream | None):
        """Where node ``node``'s forward runs: its own stream, after what ``main`` has queued
        (the batch), or with node_streams off the current stream."""
        if main is None:
            return nullcontext()
        stream = self.node_streams[node]
        stream.wait_stream(main)
        return torch.cuda.stream(stream)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimisation step of every trainable node; returns per-node losses (on device)."""
        progress = self.step / self.total_steps
        if self.step_graph is None:
            losses = self._step_body(x, y, progress)
        else:
            losses = self._graphed_step(x, y, progress)
        self.step += 1
        return losses

    def _step_body(
        self, x: torch.Tensor, y: torch.Tensor, progress: float | torch.Tensor
    ) -> torch.Tensor:
        logits, collaborative = self._forward_all(x, y)
        if not collaborative:
            losses = self.loss(logits, y, progress)
            losses.sum().backward()
        else:
            losses = self._collaborative_backward(logits, y, progress, collaborative)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return losses.detach()

    def _graphed_step(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> torch.Tensor:
        lrs = tuple(group["lr"] for group in self.optimizer.param_groups)
        try:
            return self.step_graph(x, y, progress, key=lrs)
        except CaptureError as error:
            # e.g. a user's gate that reads a value back to the host: train on without the
            # graph rather than lose the run; nothing of the failed capture has run
            warnings.warn(
                f"cuda_graph: on: the training step could not be captured as a CUDA graph "
                f"({error}); training on without it",
                RuntimeWarning,
                stacklevel=2,
            )
            self._replays_before_fallback += self.step_graph.replays
            self.step_graph = None
            self.optimizer.zero_grad(set_to_none=True)  # gradients the capture allocated
            return self._step_body(x, y, progress)

    @property
    def graphed_steps(self) -> int:
        """Steps of this process replayed as one CUDA graph (``cuda_graph: on`` on CUDA),
        those before a failed re-capture included."""
        replays = self.step_graph.replays if self.step_graph is not None else 0
        return self._replays_before_fallback + replays

    def _collaborative_backward(
        self,
        logits: list[torch.Tensor | None],
        y: torch.Tensor,
        progress: float | torch.Tensor,
        outputs: dict[int, NodeOutput],
    ) -> torch.Tensor:
        own = [outputs[n].own if n in outputs else None for n in range(self.num_nodes)]
        losses = self.loss(logits, y, progress, own)
        ungated = torch.zeros_like(losses)  # weight-only losses (kernel), outside the gates
        local_sum = torch.zeros_like(losses)
        for node, output in outputs.items():
            if output.extra is not None:
                ungated[node] = output.extra.float()
            # layer-local losses (mid, pull_push) update only their own layer: a backward
            # each, restricted to that layer's parameters, before the shared graph is freed
            for loss, params in output.local:
                loss.backward(inputs=params, retain_graph=True)
                local_sum[node] += loss.detach().float()
        losses = losses + ungated
        losses.sum().backward()
        return losses.detach() + local_sum

    def _set_train_mode(self) -> None:
        for node, model in enumerate(self.models):
            model.train(not self.frozen[node])

    def _train_one_epoch(self) -> tuple[list[float], float]:
        lr = learning_rate(self.recipe, self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._set_train_mode()
        labels = self._epoch_labels()
        order = torch.randperm(len(labels), generator=self.generator, device=self.device)
        batch, aug = self.recipe.batch_size, self.recipe.augment
        loss_sum = torch.zeros(self.num_nodes, device=self.device)
        for i in range(self.steps_per_epoch):
            index = order[i * batch : (i + 1) * batch]
            images = random_crop_flip(
                self.train_x[index], aug.crop_padding, aug.flip, self.generator
            )
            loss_sum += self.train_step(self.normalize(images, self.channels_last), labels[index])
        return (loss_sum / self.steps_per_epoch).tolist(), lr  # the epoch's one host sync

    def _check_finite(self, losses: list[float]) -> None:
        for node, value in enumerate(losses):
            if not math.isfinite(value):
                model = self.graph.nodes[node]["model"]
                raise TrainingError(
                    f"node {node} ({model}) had a non-finite training loss ({value}) in epoch "
                    f"{self.epoch + 1}; lower optimizer.lr or use precision: fp32"
                )

    def train_epochs(self, until: int | None = None) -> Iterator[EpochMetrics]:
        """Trains epoch after epoch up to ``until`` (default: the recipe's epochs)."""
        until = self.recipe.epochs if until is None else min(until, self.recipe.epochs)
        while self.epoch < until:
            start = time.perf_counter()
            losses, lr = self._train_one_epoch()
            self._check_finite(losses)
            self.epoch += 1
            val = self.evaluate("val")
            seconds = time.perf_counter() - start
            self.elapsed += seconds
            metrics = EpochMetrics(self.epoch, val.nodes, val.ensemble, tuple(losses), lr, seconds)
            self.history.append(metrics)
            yield metrics

    # -- evaluation -----------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, split: Literal["val", "test", "train"]) -> Accuracy:
        """Accuracy of every node and of their softmax-mean ensemble on a split."""
        subset: ImageSet = getattr(self.data, split)
        for model in self.models:
            model.eval()
        correct = torch.zeros(self.num_nodes + 1, dtype=torch.long, device=self.device)
        size = self.recipe.eval_batch_size
        for start in range(0, len(subset), size):
            x = self.normalize(
                subset.images[start : start + size].to(self.device), self.channels_last
            )
            y = subset.labels[start : start + size].to(self.device)
            with self._autocast():
                logits = [model(x).float() for model in self.models]
            probs = torch.stack([z.softmax(dim=1) for z in logits]).mean(dim=0)
            hits = [(z.argmax(dim=1) == y).sum() for z in (*logits, probs)]
            correct += torch.stack(hits)
        self._set_train_mode()
        fractions = (correct.double() / max(len(subset), 1)).tolist()
        return Accuracy(tuple(fractions[:-1]), fractions[-1])

    # -- checkpoints ------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed by this trainer (fixed for its life)."""
        if self._identity is None:
            self._identity = self._compute_identity()
        return self._identity

    def _compute_identity(self) -> dict[str, Any]:
        return {
            "graph_hash": graph_hash(self.graph),
            "graph": graph_to_node_link(self.graph)["nodes"],
            "gates": [
                [gate_of(self.graph, s, t) for t in range(self.num_nodes)]
                for s in range(self.num_nodes)
            ],
            "recipe": self.recipe.digest(),
            "dataset": self.data.name,
            "num_classes": self.data.num_classes,
            "train_size": len(self.data.train),
            "seed": self.seed,
            "label_noise": [self.label_noise.fraction, self.label_noise.mode],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "identity": self.identity(),
            "epoch": self.epoch,
            "step": self.step,
            "elapsed": self.elapsed,
            "models": [m.state_dict() for m in self.models],
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "noise_generator": self.noise_generator.get_state(),
            # dropout draws from torch's global generator, not from ours
            "global_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device)
            if self.device.type == "cuda"
            else None,
            "history": [m.__dict__ for m in self.history],
        }

    def load_state_dict(self, state: Any, source: str = "checkpoint") -> None:
        if (
            not isinstance(state, dict)
            or state.get("format") != CHECKPOINT_FORMAT
            or state.get("version") != CHECKPOINT_VERSION
            or not isinstance(state.get("identity"), dict)
        ):
            raise TrainingError(
                f"{source}: not a dcl-search checkpoint of version {CHECKPOINT_VERSION}"
            )
        mine, theirs = self.identity(), state["identity"]
        differing = [key for key in mine if mine[key] != theirs.get(key)]
        if differing:
            raise TrainingError(
                f"{source} belongs to another run (these settings differ: {', '.join(differing)}); "
                "use another output directory or the same settings"
            )
        for model, weights in zip(self.models, state["models"], strict=True):
            model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.step_graph is not None:
            self.step_graph.reset()  # the momentum buffers it recorded were just replaced
        self.generator.set_state(state["generator"])
        self.noise_generator.set_state(state["noise_generator"])
        if state.get("global_rng") is not None:
            torch.set_rng_state(state["global_rng"].cpu())
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.history = [
            EpochMetrics(**{k: tuple(v) if isinstance(v, list) else v for k, v in m.items()})
            for m in state["history"]
        ]

    def save_checkpoint(self, path: str | Path) -> Path:
        """Writes the whole training state atomically: a crash leaves the previous one intact."""
        return atomic_torch_save(self.state_dict(), Path(path))

    def load_checkpoint(self, path: str | Path) -> None:
        path = Path(path)
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as error:  # a truncated or foreign file
            raise TrainingError(f"{path}: cannot read the checkpoint ({error})") from None
        self.load_state_dict(state, str(path))

    def save_weights(self, directory: str | Path) -> list[Path]:
        """Each node's final weights as ``node{i}.pt`` (a plain state_dict: usable as the
        ``checkpoint`` of a frozen node in another graph)."""
        directory = Path(directory)
        return [
            atomic_torch_save(_inference(m).state_dict(), directory / f"node{i}.pt")
            for i, m in enumerate(self.models)
        ]

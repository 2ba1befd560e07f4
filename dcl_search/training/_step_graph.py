"""One CUDA graph for a whole training step (the recipe's ``cuda_graph: on``).

On an H200 the paper's 3-node graph is bound by the host: about 98 ms of CPU a step launch
kernels that run for 12.6 ms (README, "On a GPU"). Captured once, the thousands of launches of
a step (every node's forward, the losses, backward, SGD, zero_grad) replay as one. What
changes from step to step enters through static tensors that are refilled before each replay:
the batch, its labels and k / k_end (the linear gates' progress). The learning rate is baked
into the graph (a float argument of the fused SGD kernel), so the step is captured again when
it changes: at most once an epoch.

This follows torch's whole-network capture (docs, "CUDA Graphs"): a few eager steps on the
capture stream first, so that lazy initialisation (cuDNN and cuBLAS workspaces, SGD's momentum
buffers) happens outside the graph. They are the run's own first steps, not extra ones, so the
recipe trains exactly as many steps as without the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

import torch

#: the step's body: (images, labels, progress k / k_end as a 0-d float32 tensor) → per-node losses
StepBody = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CaptureError(RuntimeError):
    """The step could not be recorded (it reads a value back to the host, say)."""


class CaptureBackend(Protocol):
    """How :class:`StepGraph` runs eager steps and captures one (CUDA, or a stand-in in tests)."""

    def run_eager(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor: ...

    def capture(self, fn: Callable[[], object]) -> Callable[[], None]:
        """Records ``fn`` without running it; returns what replays the recording."""
        ...


class CudaGraphCapture:
    """torch.cuda.CUDAGraph, with the eager warm-up on the capture stream."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def run_eager(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # also orders the reuse of the last step's memory
        with torch.cuda.stream(self.stream):
            out = fn()
        current.wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], object]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: a Ray worker's other threads may touch CUDA while this one captures
        with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
            fn()
        return graph.replay  # the bound method keeps the graph, and its memory, alive


class StepGraph:
    """Runs ``body`` eagerly for ``warmup_steps`` steps, then as a captured graph, captured
    again whenever ``key`` (what the graph bakes in: the learning rates) changes.

    ``body`` must do everything a step does (forward, backward, optimizer step, zero_grad) and
    return a float32 vector of ``num_outputs`` losses; it must not read a value back to the host.
    A capture that fails raises :class:`CaptureError`, and nothing of that step has run.
    """

    def __init__(
        self,
        body: StepBody,
        num_outputs: int,
        backend: CaptureBackend,
        warmup_steps: int = 3,
    ) -> None:
        self.body, self.num_outputs, self.backend = body, num_outputs, backend
        self.eager_steps_left = warmup_steps
        self.captures = 0
        self.replays = 0
        self._key: Hashable = None
        self._replay: Callable[[], None] | None = None
        self._x = self._y = self._progress = self._losses = None

    def reset(self) -> None:
        """Forgets the capture (after the optimizer's state tensors were replaced)."""
        self._replay = None
        self._key = None
        self._x = self._y = self._progress = self._losses = None

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, progress: float, key: Hashable
    ) -> torch.Tensor:
        """One training step on ``x``, ``y``; the per-node losses, a tensor of its own."""
        if self._replay is None or key != self._key:
            if self.eager_steps_left > 0:
                self.eager_steps_left -= 1
                # a fill on the device, not a copy from the host
                at = torch.full((), progress, dtype=torch.float32, device=x.device)
                return self.backend.run_eager(lambda: self.body(x, y, at))
            self._capture(x, y, key)
        self._x.copy_(x)
        self._y.copy_(y)
        self._progress.fill_(progress)
        self._replay()
        self.replays += 1
        return self._losses.clone()  # the static output is overwritten by the next replay

    def _capture(self, x: torch.Tensor, y: torch.Tensor, key: Hashable) -> None:
        self.reset()  # drops the previous graph: its memory goes back before the next capture
        # clone keeps the batch's memory format (channels_last) for the recorded kernels
        self._x, self._y = x.clone(), y.clone()
        self._progress = torch.zeros((), dtype=torch.float32, device=x.device)
        self._losses = torch.zeros(self.num_outputs, dtype=torch.float32, device=x.device)
        x_, y_, progress, losses = self._x, self._y, self._progress, self._losses
        try:
            self._replay = self.backend.capture(lambda: losses.copy_(self.body(x_, y_, progress)))
        except RuntimeError as error:  # torch's CUDA errors are RuntimeErrors
            self.reset()
            raise CaptureError(str(error).splitlines()[0] if str(error) else repr(error)) from error
        self._key = key
        self.captures += 1

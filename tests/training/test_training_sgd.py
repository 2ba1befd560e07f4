"""EagerSGD: torch.optim.SGD's update and state_dict, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcl_search.training._sgd import EagerSGD

SETTINGS = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def _parameters(seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((5, 3), (3,))]


def _steps(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()


@pytest.mark.parametrize("foreach", [True, False])
def test_it_updates_parameters_and_momentum_exactly_as_torch_sgd(foreach: bool) -> None:
    ours, theirs = _parameters(), _parameters()
    eager = EagerSGD(ours, foreach=foreach, **SETTINGS)
    plain = torch.optim.SGD(theirs, foreach=foreach, **SETTINGS)
    _steps(eager, ours, 4, seed=1)
    _steps(plain, theirs, 4, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not torch.equal(ours[0], _parameters()[0])  # it did step
    momenta = [eager.state[p]["momentum_buffer"] for p in ours]
    assert all(
        torch.equal(m, plain.state[p]["momentum_buffer"])
        for m, p in zip(momenta, theirs, strict=True)
    )


def test_its_state_dict_is_torch_sgds_and_loads_both_ways() -> None:
    ours, theirs = _parameters(), _parameters()
    eager = EagerSGD(ours, foreach=True, **SETTINGS)
    plain = torch.optim.SGD(theirs, foreach=True, **SETTINGS)
    _steps(eager, ours, 3, seed=2)
    _steps(plain, theirs, 3, seed=2)
    saved_eager, saved_plain = eager.state_dict(), plain.state_dict()
    assert saved_eager["param_groups"] == saved_plain["param_groups"]
    assert saved_eager["state"].keys() == saved_plain["state"].keys() == {0, 1}

    # a checkpoint of one continues in the other: the same parameters after two more steps
    continued_plain = torch.optim.SGD(ours_copy := [p.detach().clone() for p in ours], **SETTINGS)
    continued_plain.load_state_dict(saved_eager)
    continued_eager = EagerSGD(theirs_copy := [p.detach().clone() for p in theirs], **SETTINGS)
    continued_eager.load_state_dict(saved_plain)
    _steps(continued_plain, ours_copy, 2, seed=3)
    _steps(continued_eager, theirs_copy, 2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(ours_copy, theirs_copy, strict=True))


def test_zero_grad_clears_or_zeroes_the_gradients() -> None:
    params = _parameters()
    optimizer = EagerSGD(params, **SETTINGS)
    _steps(optimizer, params, 1, seed=4)
    optimizer.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in params)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_hooks_run_around_its_step() -> None:
    params = _parameters()
    optimizer = EagerSGD(params, **SETTINGS)
    seen: list[str] = []
    optimizer.register_step_pre_hook(lambda *_: seen.append("pre"))
    optimizer.register_step_post_hook(lambda *_: seen.append("post"))
    _steps(optimizer, params, 2, seed=5)
    assert seen == ["pre", "post", "pre", "post"]


def test_a_differentiable_sgd_is_refused() -> None:
    with pytest.raises(ValueError, match="differentiable=True"):
        EagerSGD(_parameters(), differentiable=True, **SETTINGS)


def test_training_and_resuming_a_graph_imports_no_torch_dynamo(tmp_path: Path) -> None:
    # torch._dynamo costs each of a search's workers 1.1-1.5 s and 150 MB before its first trial
    argv = ["train", "dml:2:tiny_cnn", "--dataset", "digits", "--epochs", "1"]
    code = f"""
import sys
from dcl_search.cli import main
# the second run loads the first one's checkpoint, optimizer state included
codes = [main({argv!r} + ["--out", {str(tmp_path / "run")!r}]) for _ in range(2)]
print(codes, "torch._dynamo" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "has finished all 1 epochs already" in result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[0, 0] False"

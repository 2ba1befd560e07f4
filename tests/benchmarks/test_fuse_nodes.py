"""benchmarks/fuse_nodes.py: the fused steps (vmap, grouped convolutions) compute what the
per-node loop computes: logits, losses, parameter gradients and batch-norm running stats."""

from __future__ import annotations

import copy

import fuse_nodes as fuse
import pytest
import torch

TOL = {"rtol": 1e-4, "atol": 1e-5}


def _batch(n: int = 8, classes: int = fuse.CLASSES):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 32, 32, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return x.contiguous(memory_format=torch.channels_last), y


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, **TOL, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("model", ["tiny_cnn", "resnet20"])
@pytest.mark.parametrize("k", [2, 3])
def test_fused_steps_match_the_loop(model: str, k: int) -> None:
    torch.manual_seed(0)
    models = fuse.build_nodes(model, k, "cpu", seed=k)
    # distinct running stats per node, so copying them back to the wrong node would show
    for node, m in enumerate(models):
        for name, buf in m.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1 * (node + 1))
    x, y = _batch()
    loop_models, vmap_models = copy.deepcopy(models), copy.deepcopy(models)
    grouped = fuse.Grouped(models)  # copies the weights in, before any step
    loop = fuse.Loop(loop_models)
    vmapped = fuse.Vmap(vmap_models)

    ref_logits, ref_losses = fuse.train_step(loop, x, y)
    for impl, fused_models in ((vmapped, vmap_models), (grouped, None)):
        logits, losses = fuse.train_step(impl, x, y)
        assert logits.shape == (k, len(y), fuse.CLASSES)
        _close(losses, ref_losses, f"{impl.name} losses")
        for node in range(k):
            where = f"{impl.name} node {node}"
            _close(logits[node], ref_logits[node], f"{where} logits")
            expected = dict(loop_models[node].named_parameters())
            if fused_models is not None:
                grads = {n: p.grad for n, p in fused_models[node].named_parameters()}
                state = fused_models[node].state_dict()
            else:
                grads = impl.node_tensors(node, grads=True)
                state = impl.node_tensors(node)
            assert grads.keys() == expected.keys()
            for name, param in expected.items():
                assert grads[name] is not None, f"{where}: no gradient for {name}"
                _close(grads[name], param.grad, f"{where} grad {name}")
            ref_state = loop_models[node].state_dict()
            assert state.keys() == ref_state.keys()
            for name, value in ref_state.items():  # weights and the updated running stats
                _close(state[name], value, f"{where} state {name}")
    # the step did move the running stats, so their match above is not trivial
    before = models[0].state_dict()
    after = loop_models[0].state_dict()
    assert any(not torch.equal(before[n], after[n]) for n in before if n.endswith("running_var"))


def test_vmap_step_raises_no_fallback_warning(recwarn) -> None:
    models = fuse.build_nodes("resnet20", 2, "cpu")
    x, y = _batch()
    fuse.train_step(fuse.Vmap(models), x, y)
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "batching rule" in m], messages


def test_grouping_refuses_unknown_modules() -> None:
    def odd() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LayerNorm(30))

    with pytest.raises(fuse.NotGroupable, match="module 1 \\(LayerNorm\\)"):
        fuse.group_models([odd(), odd()])
    with pytest.raises(fuse.NotGroupable, match="differ"):
        fuse.group_models(fuse.build_nodes("resnet20", 1, "cpu") + [odd()])

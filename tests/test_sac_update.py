"""The optimised SAC update is the plain one: same parameters after several steps on fixed batches.

The reference (pbrl/agents/sac_reference.py) is SAC written the obvious way: batched ``baddbmm``
critics, torch.optim.Adam, separate backward passes for actor and temperature. Speed work on the
agent (per-member matmuls on the CPU, the fused Adam kernel called directly, one backward for actor
and temperature) must never change what an update computes; fp32 rounding is all that may differ.
"""

from __future__ import annotations

import copy

import pytest
import torch

from pbrl.agents.optim import Adam
from pbrl.agents.sac import SAC, Batch, SACConfig
from pbrl.agents.sac_reference import ReferenceSAC


def batches(n: int, obs_dim: int = 11, action_dim: int = 3, size: int = 64):
    g = torch.Generator().manual_seed(0)
    return [Batch(torch.randn(size, obs_dim, generator=g), torch.rand(size, action_dim, generator=g) * 2 - 1,
                  torch.randn(size, generator=g), torch.randn(size, obs_dim, generator=g),
                  (torch.rand(size, generator=g) < 0.1).float()) for _ in range(n)]


@pytest.mark.parametrize("hidden", [32, 256])
def test_optimised_sac_update_equals_the_plain_reference(hidden):
    torch.manual_seed(0)
    agent = SAC(11, 3, SACConfig(hidden_dim=hidden, batch_size=64, init_alpha=0.2))
    ref = copy.deepcopy(agent)
    reference = ReferenceSAC(ref)
    initial = copy.deepcopy(agent.actor.net[0].weight)
    for i, batch in enumerate(batches(6)):
        torch.manual_seed(100 + i)  # both draw the same reparameterisation noise
        agent.update(batch)
        torch.manual_seed(100 + i)
        reference.update(batch)
    for name in ("actor", "critic", "critic_target"):
        for (key, mine), theirs in zip(getattr(agent, name).state_dict().items(),
                                       getattr(ref, name).state_dict().values()):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    torch.testing.assert_close(agent.log_alpha, ref.log_alpha, rtol=1e-5, atol=1e-6)
    # the parameters did move: a no-op update would pass the comparison above trivially
    assert (agent.actor.net[0].weight - initial).abs().max() > 1e-4


def test_lean_adam_matches_torch_adam_step_for_step():
    torch.manual_seed(0)
    mine = [torch.randn(5, 7, requires_grad=True), torch.randn(7, requires_grad=True), torch.randn((), requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in mine]
    a, b = Adam(mine, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2)
    for step in range(20):
        for ps, opt in ((mine, a), (theirs, b)):
            opt.zero_grad()
            loss = sum((p.sin() * (step + 1)).sum() for p in ps[: 3 if step % 4 else 2])  # some steps leave one out
            loss.backward()
            opt.step()
    for p, q in zip(mine, theirs):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    restored = Adam([p.detach().clone().requires_grad_() for p in mine], lr=1e-2)
    restored.load_state_dict(a.state_dict())
    assert [float(s) for s in restored.steps] == [20.0, 20.0, 15.0]


@pytest.mark.parametrize("activation", [torch.nn.ReLU, torch.nn.LeakyReLU])
@pytest.mark.parametrize("out_dim", [1, 4])
def test_ensemble_layouts_agree(activation, out_dim):
    """The CPU's per-member matmuls and the GPU's batched matmuls: same outputs and gradients."""
    from pbrl.agents.nets import EnsembleMLP

    torch.manual_seed(0)
    net = EnsembleMLP(3, 9, 32, 2, out_dim, activation=activation)
    params = list(net.weights) + list(net.biases)
    for x in (torch.randn(50, 9, requires_grad=True), torch.randn(3, 50, 9, requires_grad=True)):
        results = []
        for layout in (net._forward_members, net._forward_batched):
            out = layout(x, net.weights, net.biases)
            results.append((out, torch.autograd.grad(out.square().sum(), [x, *params])))
        (out_a, grads_a), (out_b, grads_b) = results
        assert out_a.shape == (3, 50, out_dim)
        torch.testing.assert_close(out_a, out_b)
        for a, b in zip(grads_a, grads_b):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

"""Tests for ``pbrl/agents/sac.py`` and ``pbrl/agents/nets.py``: the SAC update, term by term.

Each test checks one piece of the update against a value computed here independently (Polyak
averaging, temperature gradient sign, tanh-Gaussian density, TD target), on tiny networks.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, TanhTransform, TransformedDistribution

from helpers import tiny_config
from pbrl.agents import agent_config, make_agent
from pbrl.agents.nets import EnsembleMLP
from pbrl.agents.sac import SAC, Actor, Batch, SACConfig
from pbrl.errors import ConfigError
from pbrl.workspace import Workspace

OBS_DIM, ACTION_DIM = 3, 2


def _agent(precision: str = "fp32", **overrides) -> SAC:
    torch.manual_seed(0)
    cfg = SACConfig(hidden_dim=16, depth=1, batch_size=8, **overrides)
    return SAC(OBS_DIM, ACTION_DIM, cfg, device="cpu", precision=precision)


def _batch(terminated: float = 0.0, size: int = 8, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(obs=torch.randn(size, OBS_DIM, generator=g),
                 action=torch.rand(size, ACTION_DIM, generator=g) * 2 - 1,
                 reward=torch.randn(size, generator=g),
                 next_obs=torch.randn(size, OBS_DIM, generator=g),
                 terminated=torch.full((size,), float(terminated)))


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ------------------------------------------------------------------------------ target critics
def test_polyak_update_uses_tau_and_the_freshly_updated_critic():
    # a large critic step and a target that differs from the online critic make every term visible
    agent = _agent(tau=0.25, target_update_every=1, critic_lr=0.05)
    with torch.no_grad():
        for p in agent.critic_target.parameters():
            p.add_(torch.randn_like(p))
    old_target, old_online = _params(agent.critic_target), _params(agent.critic)

    agent.update(_batch())

    new_online = _params(agent.critic)
    for t, old, new, before in zip(agent.critic_target.parameters(), old_target, new_online, old_online):
        assert not torch.allclose(new, before)  # the critic really moved
        torch.testing.assert_close(t.detach(), 0.75 * old + 0.25 * new)


def test_target_update_every_two_skips_the_second_update():
    agent = _agent(tau=0.5, target_update_every=2, critic_lr=0.05)
    target0 = _params(agent.critic_target)
    agent.update(_batch(seed=1))
    target1 = _params(agent.critic_target)
    assert all(not torch.allclose(a, b) for a, b in zip(target0, target1))  # 1st update moves the target
    agent.update(_batch(seed=2))
    for a, b in zip(target1, agent.critic_target.parameters()):
        torch.testing.assert_close(b.detach(), a, rtol=0, atol=0)  # 2nd does not
    agent.update(_batch(seed=3))
    assert all(not torch.allclose(a, b) for a, b in zip(target1, agent.critic_target.parameters()))  # 3rd does


def test_target_critics_get_no_gradients():
    agent = _agent()
    agent.update(_batch())
    assert all(p.grad is None and not p.requires_grad for p in agent.critic_target.parameters())


# ------------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("target_entropy, direction", [(-100.0, -1), (100.0, +1)])
def test_temperature_moves_toward_the_entropy_target(target_entropy, direction):
    # entropy of the initial policy is a few nats: far above -100 (alpha must fall), far below +100 (rise)
    agent = _agent(target_entropy=target_entropy, alpha_lr=0.01)
    before = agent.log_alpha.item()
    agent.update(_batch())
    after = agent.log_alpha.item()
    assert math.copysign(1, after - before) == direction and abs(after - before) > 1e-3


def test_default_target_entropy_is_minus_action_dim():
    assert _agent().target_entropy == -ACTION_DIM
    assert _agent(target_entropy=-0.5).target_entropy == -0.5


# --------------------------------------------------------------------------- tanh log-prob
def _actor() -> Actor:
    torch.manual_seed(0)
    return Actor(OBS_DIM, ACTION_DIM, hidden_dim=16, depth=1, log_std_min=-5.0, log_std_max=2.0)


def test_sample_log_prob_matches_the_tanh_gaussian_density():
    actor = _actor()
    obs = torch.randn(256, OBS_DIM)
    action, log_prob = actor.sample(obs)
    mean, log_std = actor(obs)
    assert action.shape == (256, ACTION_DIM) and log_prob.shape == (256,)
    assert action.abs().max() < 1
    dist = TransformedDistribution(Independent(Normal(mean.double(), log_std.exp().double()), 1),
                                   [TanhTransform()])
    torch.testing.assert_close(log_prob.double(), dist.log_prob(action.double()).detach(), rtol=1e-4, atol=1e-4)


def test_sample_log_prob_is_exact_where_tanh_saturates():
    # pre-tanh values of +-5..15: a naive log(1 - tanh(x)^2) in float32 gives -inf there
    actor = _actor()
    with torch.no_grad():
        last = actor.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, -10.0, 0.0, 0.0]))  # mean +-10, log-std -1.5 (std 0.22)
    obs = torch.randn(64, OBS_DIM)
    torch.manual_seed(3)
    _, log_prob = actor.sample(obs)
    torch.manual_seed(3)  # the same eps, to rebuild the pre-tanh sample in float64
    mean, log_std = (t.double() for t in actor(obs))
    x = mean + log_std.exp() * torch.randn_like(mean.float()).double()
    expected = (Normal(mean, log_std.exp()).log_prob(x) - torch.log1p(-torch.tanh(x) ** 2)).sum(-1)
    assert torch.isfinite(log_prob).all()
    torch.testing.assert_close(log_prob.double(), expected.detach(), rtol=1e-4, atol=1e-3)


def test_log_std_stays_within_its_bounds():
    actor = _actor()
    with torch.no_grad():
        actor.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 1e3, -1e3]))
    _, log_std = actor(torch.randn(4, OBS_DIM))
    assert log_std[:, 0].max() <= 2.0 and log_std[:, 1].min() >= -5.0
    assert log_std[:, 0].min() > 1.9 and log_std[:, 1].max() < -4.9


# ------------------------------------------------------------------------------- TD target
def _expected_critic_loss(agent: SAC, batch: Batch, seed: int) -> torch.Tensor:
    """0.5 * sum over critics of mean (Q - y)^2 with y computed here from the same next-action noise."""
    with torch.no_grad():
        torch.manual_seed(seed)
        next_action, next_log_prob = agent.actor.sample(batch.next_obs)
        x = torch.cat([batch.next_obs, next_action], -1)
        next_q = agent.critic_target(x).squeeze(-1).min(0).values
        y = batch.reward + agent.cfg.discount * (1 - batch.terminated) * (next_q - agent.alpha * next_log_prob)
        q = agent.critic(torch.cat([batch.obs, batch.action], -1)).squeeze(-1)
        return 0.5 * ((q - y) ** 2).mean(1).sum()


@pytest.mark.parametrize("terminated", [0.0, 1.0])
def test_critic_regresses_to_the_soft_td_target(terminated):
    agent = _agent(discount=0.9, init_alpha=0.5)
    batch = _batch(terminated)
    expected = _expected_critic_loss(agent, batch, seed=7)
    torch.manual_seed(7)
    agent.update(batch)
    assert agent.metrics()["critic_loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_terminal_transitions_do_not_bootstrap_and_truncated_ones_do():
    agent = _agent(discount=0.9, init_alpha=0.5)
    done, cut = _batch(terminated=1.0), _batch(terminated=0.0)  # same data; a truncation has terminated=0
    with torch.no_grad():
        q = agent.critic(torch.cat([done.obs, done.action], -1)).squeeze(-1)
    no_bootstrap = (0.5 * ((q - done.reward) ** 2).mean(1).sum()).item()

    a_done, a_cut = copy.deepcopy(agent), copy.deepcopy(agent)
    torch.manual_seed(7)
    a_done.update(done)
    torch.manual_seed(7)
    a_cut.update(cut)
    assert a_done.metrics()["critic_loss"] == pytest.approx(no_bootstrap, rel=1e-5)  # y = r exactly
    assert a_cut.metrics()["critic_loss"] == pytest.approx(_expected_critic_loss(agent, cut, 7).item(), rel=1e-5)
    assert a_cut.metrics()["critic_loss"] != pytest.approx(no_bootstrap, rel=1e-3)


def test_pendulum_time_limits_are_stored_as_truncations(tmp_path):
    # Pendulum never terminates: every episode ends by the 200-step time limit, which must not cut bootstrapping
    ws = Workspace(tiny_config("steps=400", "seed_steps=400"), tmp_path / "run")
    ws.train()
    buf, store = ws.agent.buffer, ws.store
    assert buf.size == store.size == 400
    assert not buf.terminated.any()
    assert store.episode.tolist() == [0] * 200 + [1] * 200
    assert store.step.tolist() == list(range(200)) * 2
    np.testing.assert_array_equal(buf.obs[1:200], buf.next_obs[:199])  # consecutive steps chain up
    assert not np.array_equal(buf.obs[200], buf.next_obs[199])  # the final observation, not the reset one


def test_terminations_are_stored_at_episode_ends(tmp_path):
    # InvertedPendulum falls within a few random steps: terminated=1 exactly on each episode's last step
    ws = Workspace(tiny_config("env=inverted_pendulum", "steps=150", "seed_steps=150"), tmp_path / "run")
    ws.train()
    buf, store = ws.agent.buffer, ws.store
    last_of_episode = np.flatnonzero(np.diff(np.append(store.episode[:store.size], -1)) != 0)  # the final step too
    ended = np.flatnonzero(buf.terminated[:buf.size])
    assert len(ended) >= 3
    np.testing.assert_array_equal(ended, last_of_episode[:len(ended)])


# ----------------------------------------------------------------------------- ensemble nets
def _ensemble() -> EnsembleMLP:
    torch.manual_seed(0)
    return EnsembleMLP(3, 4, 8, 2, 2)


def _member_forward(net: EnsembleMLP, x: torch.Tensor, e: int) -> torch.Tensor:
    """Member ``e`` as a plain MLP, written out layer by layer."""
    h = x
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        h = h @ w[e] + b[e, 0]
        if i < len(net.weights) - 1:
            h = torch.relu(h)
    return h


def test_ensemble_members_are_plain_mlps():
    net = _ensemble()
    x = torch.randn(5, 4)
    out = net(x)
    assert out.shape == (3, 5, 2)
    for e in range(3):
        torch.testing.assert_close(out[e], _member_forward(net, x, e))


def test_ensemble_members_are_independent():
    net = _ensemble()
    x = torch.randn(5, 4)
    before = net(x).detach()
    with torch.no_grad():
        for w in net.weights:
            w[1].add_(0.5)
    after = net(x).detach()
    torch.testing.assert_close(after[0], before[0], rtol=0, atol=0)
    torch.testing.assert_close(after[2], before[2], rtol=0, atol=0)
    assert not torch.allclose(after[1], before[1])


def test_shared_and_per_member_inputs_agree():
    net = _ensemble()
    x = torch.randn(5, 4)
    torch.testing.assert_close(net(x), net(x.expand(3, 5, 4).contiguous()))
    xs = torch.randn(3, 5, 4)  # a different input per member
    out = net(xs)
    for e in range(3):
        torch.testing.assert_close(out[e], _member_forward(net, xs[e], e))


def test_detached_params_pass_input_gradients_only():
    net = _ensemble()
    x = torch.randn(5, 4, requires_grad=True)
    net(x, net.detached_params()).sum().backward()
    assert all(p.grad is None for p in net.parameters())
    grad_detached = x.grad.clone()
    x.grad = None
    net(x).sum().backward()
    torch.testing.assert_close(x.grad, grad_detached)  # the same input gradient as the full graph
    assert all(p.grad is not None for p in net.parameters())


def test_actor_update_leaves_critic_gradients_to_the_critic_loss():
    # the actor loss runs through detached critic weights: after a full update the critic's gradients
    # must be exactly those of the critic loss alone
    agent = _agent(discount=0.9)
    batch = _batch()
    ref = copy.deepcopy(agent)
    torch.manual_seed(5)
    agent.update(batch)
    with torch.no_grad():
        torch.manual_seed(5)
        next_action, next_log_prob = ref.actor.sample(batch.next_obs)
        next_q = ref.q_values(batch.next_obs, next_action, target=True).min(0).values
        y = batch.reward + 0.9 * (next_q - ref.alpha * next_log_prob)
    loss = 0.5 * (ref.q_values(batch.obs, batch.action) - y).pow(2).mean(1).sum()
    loss.backward()
    for p, r in zip(agent.critic.parameters(), ref.critic.parameters()):
        torch.testing.assert_close(p.grad, r.grad)


# ------------------------------------------------------------------------------- precision
def test_bf16_update_runs_and_matches_fp32():
    fp32 = _agent("fp32", discount=0.9)
    bf16 = _agent("bf16", discount=0.9)
    bf16.actor.load_state_dict(fp32.actor.state_dict())
    bf16.critic.load_state_dict(fp32.critic.state_dict())
    bf16.critic_target.load_state_dict(fp32.critic_target.state_dict())
    batch = _batch(size=64)
    losses = {}
    for name, agent in (("fp32", fp32), ("bf16", bf16)):
        torch.manual_seed(11)
        agent.update(batch)
        losses[name] = agent.metrics()
    assert all(math.isfinite(v) for v in losses["bf16"].values())
    assert losses["bf16"]["critic_loss"] == pytest.approx(losses["fp32"]["critic_loss"], rel=0.05)
    assert losses["bf16"]["critic_loss"] != losses["fp32"]["critic_loss"]  # autocast really ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16.critic.parameters())  # fp32 master weights
    assert all(p.dtype == torch.float32 for p in bf16.actor.parameters())


# ---------------------------------------------------------------------------- act / config
def test_act_returns_bounded_actions_for_one_or_many_observations():
    agent = _agent()
    obs = np.random.default_rng(0).normal(size=(5, OBS_DIM)).astype(np.float32)
    one = agent.act(obs[0])
    many = agent.act(obs, deterministic=True)
    assert one.shape == (ACTION_DIM,) and many.shape == (5, ACTION_DIM)
    assert np.all(np.abs(many) < 1) and np.all(np.abs(one) < 1)
    np.testing.assert_array_equal(many, agent.act(obs, deterministic=True))
    assert not np.array_equal(agent.act(obs), agent.act(obs))  # stochastic unless asked otherwise


def test_state_dict_round_trip_restores_training_state():
    agent = _agent()
    for seed in range(3):
        agent.update(_batch(seed=seed))
    other = _agent()
    other.load_state_dict(copy.deepcopy(agent.state_dict()))
    assert other.num_updates == 3 and other.log_alpha.item() == agent.log_alpha.item()
    torch.manual_seed(0)
    agent.update(_batch(seed=9))
    torch.manual_seed(0)
    other.update(_batch(seed=9))
    for a, b in zip(agent.critic.parameters(), other.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # optimiser moments restored too


@pytest.mark.parametrize("key, value", [
    ("tau", 0.0), ("tau", 1.5), ("discount", -0.1), ("hidden_dim", 0), ("batch_size", True), ("critic_lr", "fast"),
    # sizes and counts must be whole numbers: a float crashes deep inside torch instead
    ("depth", 1.5), ("num_critics", 2.5), ("batch_size", 32.5), ("hidden_dim", 16.5),
    # non-numbers where floats are expected
    ("target_entropy", "high"), ("log_std_min", "low"), ("discount", "0.9x"),
])
def test_bad_agent_settings_name_their_field(key, value):
    with pytest.raises(ConfigError) as info:
        agent_config({"name": "sac", key: value})
    assert info.value.field == f"agent.{key}"


def test_make_agent_rejects_unknown_names_and_keys():
    with pytest.raises(ConfigError, match="agent"):
        make_agent({"name": "ppo2"}, OBS_DIM, ACTION_DIM, torch.device("cpu"), "fp32")
    with pytest.raises(ConfigError) as info:
        agent_config({"name": "sac", "hiden_dim": 3})
    assert info.value.field == "agent.hiden_dim"

"""Tests for ``pbrl/agents/ppo.py``: the clipped objective, GAE by hand, the rollout, rewards, snapshots.

Values are checked against numbers written out here (GAE) or against a second agent fed the same
data (reward sources, snapshot round trip), on tiny networks and rollouts.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pbrl.agents.base import Transitions
from pbrl.agents.ppo import PPO, PPOConfig, clipped_surrogate, gae
from pbrl.errors import ConfigError
from pbrl.reward.source import EnvReward, RewardSource

OBS_DIM, ACTION_DIM = 4, 2
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _config(**overrides) -> PPOConfig:
    base = dict(n_envs=3, n_steps=8, batch_size=6, n_epochs=2, hidden_dim=16)
    return PPOConfig(**{**base, **overrides})


def _agent(seed: int = 0, precision: str = "fp32", **overrides) -> PPO:
    torch.manual_seed(seed)
    return PPO(OBS_DIM, ACTION_DIM, _config(**overrides), device="cpu", precision=precision, total_steps=1000)


def _steps(n: int, n_envs: int = 3, seed: int = 0, reward=None, ends: dict | None = None) -> list[Transitions]:
    """``n`` random vector steps; ``ends`` maps a step index to "terminated" or "truncated" (all envs)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        obs = rng.standard_normal((n_envs, OBS_DIM)).astype(np.float32)
        action = rng.uniform(-1, 1, (n_envs, ACTION_DIM)).astype(np.float32)
        r = rng.standard_normal(n_envs).astype(np.float32) if reward is None else reward(obs)
        kind = (ends or {}).get(t)
        out.append(Transitions(obs, action, r, obs + 0.1, np.full(n_envs, kind == "terminated"),
                               np.full(n_envs, kind == "truncated")))
    return out


def _params(agent: PPO) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.params]


class Obs0Reward(RewardSource):
    """A non-env reward: the first observation coordinate; records the batch sizes it was asked for."""

    name = "obs0"

    def __init__(self):
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(obs.shape))
        return obs[:, 0].clone()


# ------------------------------------------------------------------------------ clipped objective
@pytest.mark.parametrize("advantage, ratio, zero_grad", [
    (1.0, 1.5, True),    # A > 0, ratio above 1+eps: the clip holds it, no incentive to go further
    (1.0, 1.1, False),   # A > 0, inside the range
    (1.0, 0.5, False),   # A > 0, below 1-eps: still pushed up (the min keeps the unclipped term)
    (-1.0, 0.5, True),   # A < 0, ratio below 1-eps: clipped
    (-1.0, 0.9, False),  # A < 0, inside
    (-1.0, 1.5, False),  # A < 0, above 1+eps: still pushed down
])
def test_clipped_surrogate_gradient_vanishes_only_past_the_clip_on_the_advantages_side(advantage, ratio, zero_grad):
    old_log_prob = torch.tensor([-1.0])
    log_prob = (old_log_prob + np.log(ratio)).requires_grad_(True)
    loss = clipped_surrogate(log_prob, old_log_prob, torch.tensor([advantage]), clip_range=0.2)
    loss.backward()
    if zero_grad:
        assert log_prob.grad.item() == 0.0
    else:  # d(-rho A)/d log_prob = -rho A
        assert log_prob.grad.item() == pytest.approx(-ratio * advantage, rel=1e-5)


def test_clipped_surrogate_value_is_the_negated_mean_of_the_min():
    log_prob, old = torch.log(torch.tensor([1.5, 0.5, 1.0])), torch.zeros(3)
    adv = torch.tensor([2.0, -1.0, 3.0])
    # min(1.5*2, 1.2*2) = 2.4; min(0.5*-1, 0.8*-1) = -0.8; min(3, 3) = 3
    assert clipped_surrogate(log_prob, old, adv, 0.2).item() == pytest.approx(-(2.4 - 0.8 + 3.0) / 3)


# ------------------------------------------------------------------------------ GAE
def test_gae_by_hand_with_a_truncation_and_a_termination():
    gamma, lam = 0.5, 0.5  # gamma * lam = 0.25
    # env 0: episode truncated at t=1 (bootstraps from V(final obs) = 4, not the reset obs' V = 0)
    # env 1: episode terminated at t=2 (its next value 5 must be ignored)
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 4.0], [0.0, 1.0]])
    values = torch.tensor([[1.0, 2.0], [2.0, 1.0], [0.0, 3.0], [1.0, 2.0]])
    next_values = torch.tensor([[2.0, 1.0], [4.0, 3.0], [1.0, 5.0], [3.0, 2.0]])
    terminated = torch.tensor([[False, False], [False, False], [False, True], [False, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False], [False, False]])
    # env 0: deltas 1+1-1=1, 1+2-2=1, 2+0.5-0=2.5, 0+1.5-1=0.5
    #        A3 = 0.5 (rollout end), A2 = 2.5 + 0.25*0.5 = 2.625, A1 = 1 (cut), A0 = 1 + 0.25*1 = 1.25
    # env 1: deltas 0+0.5-2=-1.5, 1+1.5-1=1.5, 4+0-3=1 (terminated), 1+1-2=0
    #        A3 = 0, A2 = 1 (cut), A1 = 1.5 + 0.25*1 = 1.75, A0 = -1.5 + 0.25*1.75 = -1.0625
    expected_adv = torch.tensor([[1.25, -1.0625], [1.0, 1.75], [2.625, 1.0], [0.5, 0.0]])
    adv, returns = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    torch.testing.assert_close(adv, expected_adv)
    torch.testing.assert_close(returns, expected_adv + values)


# ------------------------------------------------------------------------------ the rollout
def test_rollout_fills_then_one_update_with_stored_shapes_and_raw_actions():
    agent = _agent(log_std_init=1.0)  # std e: many samples fall outside [-1, 1]
    steps = _steps(8)
    assert agent.obs.shape == (8, 3, OBS_DIM) and agent.actions.shape == (8, 3, ACTION_DIM)
    assert agent.rewards.shape == agent.terminated.shape == agent.truncated.shape == (8, 3)
    assert agent.next_obs.shape == (8, 3, OBS_DIM)
    raws = []
    for i, step in enumerate(steps):
        if i % 2:  # the policy's action: act returns it clipped, the rollout keeps the raw sample
            step.action = agent.act(step.obs)
            raws.append(agent._last_raw.copy())
            assert np.abs(step.action).max() <= 1.0 and step.action.shape == (3, ACTION_DIM)
        agent.observe(step)
        agent.learn(EnvReward())
        if i < 7:
            assert agent.num_iterations == 0 and agent.num_updates == 0 and agent.pos == i + 1
    np.testing.assert_array_equal(agent.actions[0::2], np.stack([s.action for s in steps[0::2]]))  # given as is
    np.testing.assert_array_equal(agent.actions[1::2], np.stack(raws))
    assert np.abs(agent.actions[1::2]).max() > 1.0
    assert agent.num_iterations == 1 and agent.num_updates == 2 * 4  # n_epochs x ceil(24 / 6) minibatches
    assert agent.pos == 0
    m = agent.metrics()
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance", "lr"):
        assert np.isfinite(m[key]), key


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_old_log_probs_come_from_the_current_policy_so_the_first_step_has_ratio_one(precision):
    # one epoch of one minibatch: the only ratio seen is before any step; the actions are uniform
    # random (as in the run's seed steps), which the policy never sampled
    agent = _agent(precision=precision, n_epochs=1, batch_size=24)
    for step in _steps(8):
        agent.observe(step)
    agent.learn(EnvReward())
    assert agent.num_updates == 1
    assert agent.metrics()["approx_kl"] == 0.0 and agent.metrics()["clip_fraction"] == 0.0


def test_target_kl_stops_the_update_before_the_step_that_overshoots():
    # the first minibatch has ratio 1 (KL 0) and steps; every later one has KL > 1.5 x 1e-9 and stops
    agent = _agent(target_kl=1e-9)
    for step in _steps(8):
        agent.observe(step)
    agent.learn(EnvReward())
    assert agent.num_updates == 1 and agent.num_iterations == 1


def test_lr_and_clip_range_anneal_linearly_over_total_steps():
    agent = _agent(anneal_lr=True, anneal_clip_range=True, lr=1e-3, clip_range=0.3)  # total_steps=1000
    for step in _steps(8):
        agent.observe(step)
    agent.learn(EnvReward())
    assert agent.metrics()["lr"] == pytest.approx(1e-3 * (1 - 24 / 1000))
    assert agent.metrics()["clip_range"] == pytest.approx(0.3 * (1 - 24 / 1000))
    assert agent.opt.lr == pytest.approx(1e-3 * (1 - 24 / 1000))


def test_a_full_rollout_without_learn_is_dropped_by_the_next_observe():
    agent = _agent()
    steps = _steps(10)
    for step in steps:
        agent.observe(step)  # seed steps: learn is not called
    assert agent.pos == 2
    np.testing.assert_array_equal(agent.obs[:2], np.stack([s.obs for s in steps[8:]]))


def test_act_takes_a_single_observation_and_never_touches_the_statistics():
    agent = _agent(normalize_obs=True)
    for step in _steps(3):
        agent.observe(step)
    before = copy.deepcopy(agent.obs_rms.state_dict())
    action = agent.act(np.ones(OBS_DIM, np.float32), deterministic=True)
    agent.act(np.ones((3, OBS_DIM), np.float32) * 100)
    assert action.shape == (ACTION_DIM,)
    for key in ("mean", "var", "count"):
        np.testing.assert_array_equal(agent.obs_rms.state_dict()[key], before[key])
    assert agent.obs_rms.count == pytest.approx(1e-4 + 9)  # 3 steps x 3 envs of training obs


# ------------------------------------------------------------------------------ where rewards come from
def test_a_non_env_source_is_asked_on_the_whole_rollout_and_stored_rewards_never_leak():
    nan_reward = lambda obs: np.full(len(obs), np.nan, np.float32)  # noqa: E731
    agent = _agent()
    for step in _steps(8, reward=nan_reward):
        agent.observe(step)
    source = Obs0Reward()
    agent.learn(source)
    assert source.calls == [(24, OBS_DIM)]
    assert all(np.isfinite(v) for v in agent.metrics().values())
    assert all(torch.isfinite(p).all() for p in agent.params)

    leaky = _agent()  # the same NaN rewards through EnvReward reach the loss
    for step in _steps(8, reward=nan_reward):
        leaky.observe(step)
    leaky.learn(EnvReward())
    assert np.isnan(leaky.metrics()["value_loss"])


def test_env_reward_and_a_source_giving_the_same_numbers_train_identically():
    obs0 = lambda obs: obs[:, 0].copy()  # noqa: E731
    agents = []
    for source in (EnvReward(), Obs0Reward()):
        agent = _agent(seed=3)
        for step in _steps(8, reward=obs0 if source.from_env else (lambda o: np.full(len(o), np.nan, np.float32))):
            agent.observe(step)
        torch.manual_seed(7)
        agent.learn(source)
        agents.append(agent)
    for a, b in zip(_params(agents[0]), _params(agents[1])):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------------------------------ snapshots
def test_state_dict_round_trip_mid_rollout_continues_identically():
    kwargs = dict(normalize_obs=True, normalize_reward=True, anneal_lr=True)
    # steps 0-7: first rollout; 8-12 stored at the snapshot (the last one ends its episode, so the
    # resume's truncation mark changes nothing); 13-15 after it
    steps = _steps(16, seed=1, ends={3: "terminated", 12: "truncated"})
    original = _agent(**kwargs)
    for i, step in enumerate(steps[:13]):
        original.observe(step)
        original.learn(EnvReward())
    assert original.num_iterations == 1 and original.pos == 5
    state = copy.deepcopy(original.state_dict())

    resumed = _agent(seed=99, **kwargs)  # different initial weights: everything must come from the state
    resumed.load_state_dict(state)
    for key in ("mean", "var", "count"):
        np.testing.assert_array_equal(resumed.obs_rms.state_dict()[key], original.obs_rms.state_dict()[key])
        np.testing.assert_array_equal(resumed.ret_rms.state_dict()[key], original.ret_rms.state_dict()[key])
    np.testing.assert_array_equal(resumed.obs[:5], original.obs[:5])
    for agent in (original, resumed):
        for step in steps[13:]:
            agent.observe(step)
        torch.manual_seed(11)
        agent.learn(EnvReward())
    assert resumed.num_iterations == original.num_iterations == 2
    for a, b in zip(_params(original), _params(resumed)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.metrics() == original.metrics()
    np.testing.assert_array_equal(resumed.obs_rms.mean, original.obs_rms.mean)


def test_loading_marks_the_last_stored_step_truncated():
    agent = _agent()
    for step in _steps(3):
        agent.observe(step)
    assert not agent.truncated[:3].any()
    resumed = _agent(seed=1)
    resumed.load_state_dict(copy.deepcopy(agent.state_dict()))
    assert resumed.pos == 3
    np.testing.assert_array_equal(resumed.truncated[:3], [[False] * 3, [False] * 3, [True] * 3])


# ------------------------------------------------------------------------------ it learns
def test_a_one_step_bandit_pushes_the_mean_action_towards_the_best_action():
    # each episode is one step; the reward is the action's first coordinate, so +1 is optimal
    agent = _agent(n_envs=4, n_steps=16, batch_size=16, n_epochs=4, lr=1e-2)
    rng = np.random.default_rng(0)
    probe = np.zeros((1, OBS_DIM), np.float32)
    start = agent.act(probe, deterministic=True)[0, 0]
    for _ in range(5 * 16):
        obs = rng.standard_normal((4, OBS_DIM)).astype(np.float32)
        action = agent.act(obs)
        agent.observe(Transitions(obs, action, action[:, 0].copy(), obs, np.ones(4, bool), np.zeros(4, bool)))
        agent.learn(EnvReward())
    assert agent.num_iterations == 5
    end = agent.act(probe, deterministic=True)[0, 0]
    assert end > start + 0.3, (start, end)


# ------------------------------------------------------------------------------ config
def test_conf_file_documents_every_field_with_the_dataclass_defaults():
    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf/agent/ppo.yaml"))
    assert PPOConfig(**conf) == PPOConfig()
    PPOConfig().check()


@pytest.mark.parametrize("field, value", [
    ("n_envs", 0), ("vector_env", "threads"), ("n_steps", -1), ("batch_size", 25), ("batch_size", 2.5),
    ("n_epochs", 0), ("lr", 0.0), ("lr", "fast"), ("anneal_lr", "yes"), ("gamma", 1.5), ("gae_lambda", -0.1),
    ("clip_range", 0), ("clip_range_vf", -1.0), ("ent_coef", -0.01), ("vf_coef", float("nan")),
    ("max_grad_norm", 0), ("target_kl", 0.0), ("hidden_dim", 0), ("depth", True), ("activation", "gelu"),
    ("log_std_init", None), ("ortho_init", 1), ("normalize_obs", "no"), ("clip_obs", -1.0), ("clip_reward", 0),
])
def test_bad_config_values_name_the_field(field, value):
    cfg = _config(**{field: value})  # n_envs 3 x n_steps 8 = 24 transitions per rollout
    with pytest.raises(ConfigError) as info:
        cfg.check()
    assert info.value.field == f"agent.{field}"
    with pytest.raises(ConfigError):
        PPO(OBS_DIM, ACTION_DIM, cfg)


def test_batch_size_one_needs_advantage_normalisation_off():
    with pytest.raises(ConfigError, match="agent.batch_size"):
        _config(batch_size=1).check()
    _config(batch_size=1, normalize_advantage=False).check()

"""The PEBBLE add-ons as switches (issue 18): RUNE's exploration bonus, QPA's policy-aligned batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import tiny_config

from pbrl.errors import ConfigError
from pbrl.reward.model import RewardModel, RewardModelConfig
from pbrl.reward.rune import RuneReward, agent_reward
from pbrl.reward.source import LearnedReward
from pbrl.workspace import Workspace

pytestmark = pytest.mark.usefixtures("one_thread")

# a tiny PEBBLE run on Pendulum: rounds at 300, 500, 700 (after 200 seed and 100 pretraining steps)
PEBBLE = ["steps=900", "seed_steps=200", "pretrain.steps=100", "feedback.num_interact=200", "feedback.mb_size=10",
          "feedback.max_feedback=30", "feedback.segment=20", "reward_model.hidden_dim=32", "reward_model.epochs=3"]
PPO = ["agent=ppo", "agent.n_envs=2", "agent.n_steps=64", "agent.batch_size=64", "agent.n_epochs=1", "seed_steps=0"]


def _model(scale: float = 1.0) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel(3, 1, RewardModelConfig(ensemble_size=3, hidden_dim=16, depth=2, scale=scale))


def test_rune_adds_beta_t_times_the_ensembles_std_and_beta_decays_as_configured():
    model, step = _model(scale=2.0), [0]
    rune = RuneReward(LearnedReward(model, lambda: 1), beta=0.05, decay=1e-5, step=lambda: step[0])
    obs, action = torch.randn(64, 3), torch.rand(64, 1) * 2 - 1
    members = model.member_rewards(obs, action).detach().numpy()  # [E, B]
    for t in (0, 1, 100_000):
        step[0] = t
        beta = 0.05 * (1 - 1e-5) ** t
        assert rune.beta_at(t) == pytest.approx(beta)
        expected = 2.0 * members.mean(0) + beta * members.std(0)  # np.std: the population std, as RUNE's code
        np.testing.assert_allclose(rune(obs, action).numpy(), expected, rtol=1e-5, atol=1e-6)
        mean, bonus = rune.parts(obs, action)
        np.testing.assert_allclose(bonus.numpy(), beta * members.std(0), rtol=1e-5, atol=1e-7)
    assert rune.beta_at(100_000) == pytest.approx(0.05 * math.exp(-1), rel=1e-4)  # (1 - 1e-5)^1e5 ~ 1/e
    untrained = RuneReward(LearnedReward(model, lambda: 0), beta=0.05, decay=1e-5, step=lambda: 0)
    assert not untrained(obs, action).any()  # no bonus before the model has learned anything


@pytest.mark.parametrize("override, field", [("reward.bonus=curiosity", "reward.bonus"),
                                             ("reward.rune_beta=-1", "reward.rune_beta"),
                                             ("reward.rune_decay=1.5", "reward.rune_decay")])
def test_bad_bonus_settings_name_the_field(override, field):
    cfg = tiny_config("reward.bonus=rune", override)
    with pytest.raises(ConfigError) as err:
        agent_reward(cfg, LearnedReward(_model(), lambda: 0), lambda: 0)
    assert err.value.field == field


def test_a_bonus_without_a_teacher_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="reward.bonus"):
        Workspace(tiny_config("teacher=none", "reward.bonus=rune"), tmp_path / "run")


def test_sac_trains_on_the_rune_reward_of_every_sampled_batch(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "reward.bonus=rune", "reward.rune_beta=0.5"), tmp_path / "run")
    rune = ws.feedback.agent_reward
    assert isinstance(rune, RuneReward)
    checked = []
    update = ws.agent.update

    def watched(batch):
        if ws.feedback.learner.trained and ws.step % 50 == 0:  # after the first round: the critic's reward
            expected = rune(batch.obs, batch.action)
            torch.testing.assert_close(batch.reward, expected)
            mean, bonus = rune.parts(batch.obs, batch.action)
            assert (bonus > 0).all()  # three members never agree exactly
            checked.append(ws.step)
        return update(batch)

    ws.agent.update = watched
    summary = ws.train()
    assert len(checked) >= 8 and summary["labels"] == 30
    assert math.isfinite(summary["final_eval_return"])


def test_prefppo_asks_its_rollout_rewards_from_the_rune_source(tmp_path):
    ws = Workspace(tiny_config(*PPO, *PEBBLE, "reward.bonus=rune", "reward.rune_beta=0.5"), tmp_path / "run")
    rune = ws.feedback.agent_reward
    seen = []
    rollout = ws.agent._rollout_rewards

    def watched(reward, obs, actions):
        out = rollout(reward, obs, actions)
        if reward is rune and rune.version:
            flat = out.reshape(-1)
            torch.testing.assert_close(flat, rune(obs.reshape(len(flat), -1), actions.reshape(len(flat), -1)))
            seen.append(ws.step)
        return out

    ws.agent._rollout_rewards = watched
    ws.train()
    assert seen  # at least one update after the first round used the bonus


def test_rune_composes_with_a_persons_teacher(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "teacher=human", "teacher.serve=false", "reward.bonus=rune"), tmp_path / "run")
    try:
        assert isinstance(ws.feedback.agent_reward, RuneReward)
    finally:
        ws.feedback.close()
        ws.envs.close()


class _Version:
    """A stand-in reward source that has (or has not yet) been trained."""

    per_batch, from_env = False, False

    def __init__(self, version: int):
        self.version = version


def _filled_sac(fraction: float, window: int, capacity: int = 500, stored: int = 800):
    from pbrl.agents.sac import SAC, SACConfig

    agent = SAC(1, 1, SACConfig(hidden_dim=8, batch_size=64, recent_fraction=fraction, recent_window=window),
                capacity=capacity)
    for i in range(stored):  # obs = the transition's index: the ring wraps past capacity
        agent.buffer.add(np.array([i], np.float32), np.zeros(1, np.float32), 0.0, False, np.zeros(1, np.float32))
    return agent


def test_recent_batches_come_from_the_newest_window_even_after_the_ring_wraps():
    agent = _filled_sac(0.5, window=100)
    newest = agent.buffer.sample_recent(4000, window=100).obs.reshape(-1)
    assert newest.min() >= 700 and newest.max() == 799 and len(newest.unique()) == 100


def test_qpa_takes_part_of_each_batch_from_recent_steps_only_while_labels_are_collected():
    agent = _filled_sac(0.5, window=100)
    torch.manual_seed(0)
    batch = agent._sample(_Version(1)).obs.reshape(-1)
    assert len(batch) == 64 and (batch[32:] >= 700).all()  # the second half: the newest 100 of 800 stored
    assert (batch[:32] < 700).any()  # the first half: the whole buffer (300..799)
    assert not (agent._sample(_Version(0)).obs.reshape(-1) >= 700).all()  # no learned reward yet: uniform
    agent.labels_done = True  # set by the last reward change (the budget is used up)
    torch.manual_seed(0)
    assert (agent._sample(_Version(1)).obs.reshape(-1) < 700).sum() > 40  # uniform again: ~75 % older steps


def test_the_last_round_tells_the_agent_that_labels_are_done(tmp_path):
    ws = Workspace(tiny_config(*PEBBLE, "agent.recent_fraction=0.5", "agent.recent_window=400"), tmp_path / "run")
    changes = []
    changed = ws.agent.reward_changed
    ws.agent.reward_changed = lambda change: (changes.append((ws.step, change.last)), changed(change))[1]
    ws.train()
    assert changes == [(300, False), (500, False), (700, True)]  # 30 labels in rounds of 10
    assert ws.agent.labels_done


@pytest.mark.parametrize("override, field", [("agent.recent_fraction=1.5", "agent.recent_fraction"),
                                             ("agent.recent_window=0", "agent.recent_window")])
def test_bad_recent_settings_name_the_field(tmp_path, override, field):
    with pytest.raises(ConfigError) as err:
        Workspace(tiny_config(override), tmp_path / "run")
    assert err.value.field == field

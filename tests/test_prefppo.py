"""PPO and PrefPPO in the run: vector envs, the episode store, the reward source, teachers, resume.

The PPO agent's own mechanics (clipped objective, GAE, rollout, normalisation) are tested in
tests/test_ppo.py; these tests run it through the workspace, the loop every agent plugs into.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, tiny_config
from pbrl.reward.source import EnvReward
from pbrl.workspace import Workspace

pytestmark = pytest.mark.usefixtures("one_thread")

# PPO at a size a test affords: 2 envs, 128-step rollouts, 2 epochs
PPO = ["agent=ppo", "agent.n_envs=2", "agent.n_steps=128", "agent.batch_size=64", "agent.n_epochs=2", "seed_steps=0"]
PREF = ["pretrain.steps=400", "feedback.num_interact=400", "feedback.mb_size=10", "feedback.max_feedback=30",
        "feedback.segment=25", "reward_model.hidden_dim=32", "reward_model.epochs=5"]


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_vector_envs_write_interleaved_rows_and_segments_stay_inside_episodes(tmp_path):
    ws = Workspace(tiny_config(*PPO, *PREF, "agent.n_envs=3", "steps=1500"), tmp_path / "run")
    ws.train()
    store = ws.store
    assert ws.n_envs == 3 and store.size == 1500 and ws.step == 1500
    np.testing.assert_array_equal(store.env[:9], [0, 1, 2] * 3)  # one row per env per step
    for env in range(3):  # each env's rows count its episodes' steps up, episode after episode
        steps = store.step[store.env == env]
        restarts = np.flatnonzero(np.diff(steps) != 1)
        assert (steps[restarts + 1] == 0).all()
        assert len(np.unique(store.episode[store.env == env])) == len(restarts) + 1
    segments = store.sample_segments(25, 200, np.random.default_rng(0))
    for rows in segments:
        assert len(set(store.episode[rows])) == 1 and len(set(store.env[rows])) == 1
        np.testing.assert_array_equal(np.diff(store.step[rows]), 1)
    # every finished episode was logged once, with its own 200 steps (Pendulum's time limit)
    episodes = _rows(tmp_path / "run" / "episodes.csv")
    assert len(episodes) == 6 and {int(r["length"]) for r in episodes} == {200}
    assert len({int(r["episode"]) for r in episodes}) == 6


def test_the_true_reward_never_reaches_ppo_or_the_reward_model(tmp_path):
    ws = Workspace(tiny_config(*PPO, *PREF, "steps=1600"), tmp_path / "run")
    observed, sources = [], []
    observe, learn = ws.agent.observe, ws.agent.learn
    ws.agent.observe = lambda step: (observed.append(step.reward.copy()), observe(step))[1]
    ws.agent.learn = lambda reward: (sources.append(reward), learn(reward))[1]
    summary = ws.train()
    # PPO takes no step rewards from a learned source (it asks the source before each update): it sees NaN
    assert len(observed) == 800 and all(np.isnan(r).all() for r in observed)
    assert sources and not any(isinstance(s, EnvReward) or s.from_env for s in sources)
    assert {s.name for s in sources} == {"state_entropy", "learned"}
    assert all(math.isfinite(v) for v in ws.agent.metrics().values()) and ws.agent.num_updates > 0
    assert set(ws.feedback.learner.labels.state_dict()) == {"obs", "action", "ranking", "equal"}
    assert summary["labels"] == 30 and summary["n_envs"] == 2


def test_ppo_is_spared_the_per_step_reward_pass_and_still_logs_each_episodes_learned_return(tmp_path):
    """No reward-model forward per env step for PPO; an episode's learned return is the model's over its stored rows."""
    from pbrl.reward.source import LearnedReward

    ws = Workspace(tiny_config(*PPO, *PREF, "feedback.max_feedback=10", "steps=1200"), tmp_path / "run")
    calls = []
    step_reward = LearnedReward.step_reward
    LearnedReward.step_reward = lambda self, *a: (calls.append(1), step_reward(self, *a))[1]
    try:
        ws.train()
    finally:
        LearnedReward.step_reward = step_reward
    assert not calls and ws.feedback.learner.rounds == 1  # one round at 400 steps, its labels all asked
    episodes = _rows(tmp_path / "run" / "episodes.csv")
    last = [r for r in episodes if int(r["env_step"]) > 400]
    assert last and all(math.isfinite(float(r["learned_return"])) for r in last)
    for r in last[-2:]:  # the model has not changed since: its return over the stored episode, recomputed
        rows = ws.store.episode_rows(int(r["episode"]))
        assert len(rows) == int(r["length"]) == 200
        np.testing.assert_array_equal(ws.store.step[rows], np.arange(200))
        expected = ws.feedback.learned_return(ws.store.obs[rows], ws.store.action[rows])
        assert float(r["learned_return"]) == pytest.approx(expected, rel=1e-5)


TEACHER_PRESETS = sorted(p.stem for p in (REPO / "conf" / "teacher").glob("*.yaml") if p.stem != "none")


def test_the_teacher_presets_are_all_here():
    assert {"oracle", "mistake", "human", "backflip_oracle"} <= set(TEACHER_PRESETS)


@pytest.mark.parametrize("teacher", TEACHER_PRESETS)
def test_agent_ppo_composes_with_every_teacher_preset(tmp_path, teacher):
    extra = {"human": ["teacher.serve=false"], "backflip_oracle": ["env=hopper"]}.get(teacher, [])
    ws = Workspace(tiny_config(*PPO, f"teacher={teacher}", *extra), tmp_path / "run")
    try:
        assert ws.agent.cfg.name == "ppo" and ws.feedback.preference
    finally:
        ws.feedback.close()
        ws.envs.close()


def test_a_ppo_run_resumes_from_its_snapshot(tmp_path):
    run = tmp_path / "run"
    cfg = [*PPO, *PREF, "snapshot.every=600", "snapshot.keep=true", "eval.every=400"]
    Workspace(tiny_config(*cfg, "steps=1000"), run).train()  # snapshot at 600, mid-rollout
    ws = Workspace(tiny_config(*cfg, "steps=1600"), run)
    summary = ws.train()
    assert summary["env_steps"] == 1600 and summary["labels"] == 30
    assert [int(r["env_step"]) for r in _rows(run / "metrics.csv")] == [400, 800, 1200, 1600]
    assert [int(r["env_step"]) for r in _rows(run / "rounds.csv")] == [400, 800, 1200]


def test_a_tiny_prefppo_run_learns_a_reward_that_tracks_the_true_one(tmp_path):
    """Pendulum with 100 oracle labels: the learned per-step reward correlates with the true one (> 0.7)."""
    cfg = tiny_config("agent=ppo", "agent.n_envs=2", "agent.n_steps=256", "seed_steps=0", "steps=6000",
                      "pretrain.steps=1000", "feedback.num_interact=1000", "feedback.mb_size=25",
                      "feedback.max_feedback=100", "reward_model.hidden_dim=64", "eval.every=0")
    summary = Workspace(cfg, tmp_path / "run").train()
    assert summary["labels"] == 100 and summary["reward_correlation"] > 0.7, summary["reward_correlation"]
    assert summary["wall_time_s"] < 120  # ~10 s here; the bar is 2 minutes


def test_async_vector_envs_step_exactly_like_sync_ones(tmp_path):
    """agent.vector_env=async runs each env in its own process; with the same seed the run stores the same steps."""
    stores = {}
    for mode in ("sync", "async"):
        ws = Workspace(tiny_config(*PPO, "teacher=none", "steps=600", f"agent.vector_env={mode}"), tmp_path / mode)
        ws.train()
        stores[mode] = ws.store
    for column in ("obs", "action", "sim_state", "episode", "step", "env"):
        np.testing.assert_array_equal(getattr(stores["sync"], column), getattr(stores["async"], column), err_msg=column)

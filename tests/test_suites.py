"""DeepMind Control and Meta-World tasks (pbrl/envs/suites.py), action repeat, and the B-Pref presets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from helpers import compose_config, tiny_config
from pbrl.agents.nets import EnsembleMLP, init_weights_
from pbrl.envs import get_sim_state, make_env, set_sim_state, spec_of
from pbrl.envs import suites
from pbrl.envs.make import ActionRepeat
from pbrl.envs.render import FrameRenderer, configure_mujoco_gl
from pbrl.errors import ConfigError
from pbrl.evaluation import Evaluator
from pbrl.workspace import Workspace

WALKER, MW = "dm_control/walker-walk-v0", "Meta-World/goal_observable"


def _available(env_id: str) -> str | None:
    """None where the suite's extra is installed and runs with this MuJoCo, else why not."""
    try:
        make_env(env_id, {"env_name": "button-press-v3"} if env_id == MW else {}).close()
    except ConfigError as exc:
        return str(exc)
    return None


needs_dmc = pytest.mark.skipif(_available(WALKER) is not None, reason=f"{_available(WALKER)}")
needs_metaworld = pytest.mark.skipif(_available(MW) is not None, reason=f"{_available(MW)}")
needs_gl = pytest.mark.skipif(configure_mujoco_gl() is None, reason="no headless GL for MuJoCo")


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@needs_dmc
@pytest.mark.parametrize("env_id, obs_dim, action_dim, fps", [(WALKER, 24, 6, 40.0),
                                                             ("dm_control/cheetah-run-v0", 17, 6, 100.0)])
def test_a_dmc_task_makes_seeds_and_steps_with_flat_observations(env_id, obs_dim, action_dim, fps):
    env = make_env(env_id)
    spec = spec_of(env, env_id)
    assert (spec.obs_dim, spec.action_dim, spec.max_episode_steps, spec.render_fps) == (obs_dim, action_dim, 1000, fps)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    other, _ = env.reset(seed=4)
    assert first.dtype == np.float32 and first.shape == (obs_dim,)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    steps, done, total = 0, False, 0.0
    while not done:
        _, reward, terminated, truncated, _ = env.step(np.ones(action_dim, np.float32))
        assert 0.0 <= reward <= 1.0  # DMC rewards are in [0, 1]
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert steps == 1000 and truncated and not terminated  # the suite's time limit, never a termination


@needs_dmc
def test_dm_controls_own_settotalmass_notice_is_not_logged(caplog):
    """dm_control's cheetah model uses a deprecated compiler attribute; MuJoCo's notice (3 lines per env
    made, through absl) is not the user's to act on, and only that notice is dropped."""
    import logging

    with caplog.at_level(logging.WARNING):
        make_env("dm_control/cheetah-run-v0").close()
        logging.getLogger("absl").warning("another MuJoCo warning")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("settotalmass" in m for m in messages)
    assert "another MuJoCo warning" in messages


@needs_metaworld
def test_a_meta_world_task_draws_its_goal_from_the_reset_seed_and_reports_success():
    env = make_env(MW, {"env_name": "button-press-v3"})
    spec = spec_of(env, MW)
    assert (spec.obs_dim, spec.action_dim, spec.max_episode_steps) == (39, 4, 500)
    first, _ = env.reset(seed=1)
    again, _ = env.reset(seed=1)
    other, _ = env.reset(seed=2)
    np.testing.assert_array_equal(first, again)  # the same goal and object placement from the same seed
    assert not np.allclose(first[-3:], other[-3:])  # the goal (last 3 entries) moves with the seed
    _, _, _, _, info = env.step(env.action_space.sample())
    assert "success" in info and float(info["success"]) in (0.0, 1.0)


@needs_gl
@pytest.mark.parametrize("env_id, kwargs", [
    ("Hopper-v5", {}),
    pytest.param(WALKER, {}, marks=needs_dmc),
    pytest.param(MW, {"env_name": "drawer-open-v3"}, marks=needs_metaworld),
])
def test_a_simulator_state_round_trip_renders_the_same_frame(env_id, kwargs):
    source = make_env(env_id, kwargs)
    source.reset(seed=1)
    for _ in range(10):
        source.step(source.action_space.sample())
    state = get_sim_state(source)
    frames = []
    for seed in (5, 7):  # two other envs, elsewhere in other episodes (Meta-World: another goal and object)
        env = make_env(env_id, kwargs)
        env.reset(seed=seed)
        for _ in range(3):
            env.step(env.action_space.sample())
        set_sim_state(env, state)
        np.testing.assert_array_equal(get_sim_state(env), state)
        renderer = FrameRenderer(env, 160, 120)
        frames.append(renderer.render())
        renderer.close()
    np.testing.assert_array_equal(frames[0], frames[1])
    assert frames[0].std() > 1  # a picture, not a blank frame


@pytest.mark.parametrize("env_id, kwargs, field, says", [
    ("dm_control/walker-wlak-v0", {}, "env.id", "did you mean dm_control/walker-walk-v0"),
    (MW, {"env_name": "button-pres-v3"}, "env.kwargs.env_name", "did you mean button-press-v3"),
    (MW, {}, "env.kwargs.env_name", "needs a Meta-World v3 task name"),
])
def test_bad_suite_ids_give_one_clear_line(env_id, kwargs, field, says):
    if _available(env_id.replace("wlak", "walk")):
        pytest.skip(_available(env_id.replace("wlak", "walk")))
    with pytest.raises(ConfigError) as err:
        make_env(env_id, kwargs)
    assert err.value.field == field and says in str(err.value), str(err.value)


@pytest.mark.parametrize("env_id, extra", [(WALKER, "dmc"), (MW, "metaworld")])
def test_a_missing_extra_names_the_extra_to_install(monkeypatch, env_id, extra):
    real_import = suites.importlib.import_module

    def fail(name, *args):
        if name in ("shimmy", "metaworld"):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real_import(name, *args)

    monkeypatch.setattr(suites.importlib, "import_module", fail)
    with pytest.raises(ConfigError) as err:
        make_env(env_id)
    assert err.value.field == "env.id" and f"pip install 'pbrl[{extra}]'" in str(err.value)


def test_action_repeat_sums_rewards_and_counts_limits_in_agent_steps():
    plain = make_env("Pendulum-v1")
    repeated = make_env("Pendulum-v1", action_repeat=4)
    assert isinstance(repeated, ActionRepeat) and spec_of(repeated, "Pendulum-v1").max_episode_steps == 50
    plain.reset(seed=0)
    repeated.reset(seed=0)
    action = np.array([0.3], np.float32)
    expected = sum(plain.step(action)[1] for _ in range(4))
    _, reward, *_ = repeated.step(action)
    assert reward == pytest.approx(expected)
    steps, done = 1, False
    while not done:
        *_, terminated, truncated, _ = repeated.step(action)
        steps, done = steps + 1, terminated or truncated
    assert steps == 50  # Pendulum's 200 env steps
    with pytest.raises(ConfigError, match="env.action_repeat"):
        make_env("Pendulum-v1", action_repeat=0)


class _Succeeds(gym.Env):
    """Succeeds (info["success"]) at step 3 of every episode whose reset seed is even."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.even, self.t = seed % 2 == 0, 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 0.0, False, self.t >= 5, {"success": float(self.even and self.t == 3)}


class _Zero:
    def act(self, obs, deterministic=False):
        return np.zeros(1, np.float32)


def test_the_success_rate_is_the_share_of_episodes_that_succeed_at_any_step(tmp_path):
    if "PbrlTestSucceeds-v0" not in gym.registry:
        gym.register("PbrlTestSucceeds-v0", entry_point=_Succeeds, max_episode_steps=5)
    cfg = tiny_config("env.id=PbrlTestSucceeds-v0", "eval.episodes=4", "seed=1")  # seeds 1_000_001 .. 1_000_004
    evaluator = Evaluator(cfg, tmp_path, say=lambda *a, **k: None)
    row = evaluator.evaluate(_Zero(), step=0, learned_return=lambda obs, action: None)
    evaluator.close()
    assert row["eval_success_rate"] == 0.5  # two even seeds of four; success at step 3 counts, not only the last
    pendulum = Evaluator(tiny_config(), tmp_path, say=lambda *a, **k: None)
    assert "eval_success_rate" not in pendulum.evaluate(_Zero(), 0, lambda obs, action: None)  # no flag, no column
    pendulum.close()


@needs_metaworld
def test_a_tiny_meta_world_run_logs_its_success_rate(tmp_path):
    cfg = tiny_config("experiment=bpref_button_press", *_TINY_PREF, "steps=600", "eval.every=300", "eval.episodes=1")
    summary = Workspace(cfg, tmp_path / "run").train()
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert [int(r["env_step"]) for r in rows] == [300, 600]
    assert all(float(r["eval_success_rate"]) in (0.0, 1.0) for r in rows)
    assert summary["final_eval_success_rate"] == float(rows[-1]["eval_success_rate"])
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["labels"] == 10  # the task by name: Meta-World's one id runs every task
    assert (written["env_id"], written["task"]) == ("Meta-World/goal_observable",
                                                    "Meta-World/goal_observable/button-press-v3")


@needs_dmc
def test_a_tiny_walker_walk_preference_run_trains_and_evaluates(tmp_path):
    cfg = tiny_config("experiment=bpref_walker_walk", "agent=sac_bpref_cpu", *_TINY_PREF, "steps=600", "eval.every=600",
                      "eval.episodes=1")
    summary = Workspace(cfg, tmp_path / "run").train()
    assert summary["env_steps"] == 600 and summary["labels"] == 10 and 0 <= summary["final_eval_return"] <= 1000
    assert summary["task"] == summary["env_id"] == "dm_control/walker-walk-v0"


# the presets' agents and schedules shrunk to seconds: the mechanics do not depend on the sizes
_TINY_PREF = ["agent.hidden_dim=32", "agent.batch_size=32", "seed_steps=200", "pretrain.steps=100",
              "feedback.num_interact=200", "feedback.max_feedback=10", "feedback.mb_size=10",
              "reward_model.hidden_dim=32"]


@pytest.mark.parametrize("preset, expected", [
    ("bpref_walker_walk", {"env.id": WALKER, "steps": 500_000, "feedback.num_interact": 20_000,
                           "feedback.max_feedback": 1000, "feedback.mb_size": 100, "reward_model.epochs": 50,
                           "agent.actor_lr": 5e-4, "agent.hidden_dim": 1024, "agent.batch_size": 1024}),
    ("bpref_cheetah_run", {"env.id": "dm_control/cheetah-run-v0", "feedback.num_interact": 20_000}),
    ("bpref_quadruped_walk", {"steps": 1_000_000, "feedback.num_interact": 30_000, "agent.actor_lr": 1e-4,
                              "agent.critic_lr": 1e-4}),
    ("bpref_button_press", {"env.id": MW, "env.kwargs.env_name": "button-press-v3", "feedback.max_feedback": 10_000,
                            "feedback.mb_size": 50, "feedback.num_interact": 5000, "reward_model.epochs": 10,
                            "agent.hidden_dim": 256, "agent.depth": 3, "agent.batch_size": 512}),
    ("bpref_sweep_into", {"env.kwargs.env_name": "sweep-into-v3"}),
    ("bpref_drawer_open", {"env.kwargs.env_name": "drawer-open-v3"}),
])
def test_bpref_presets_compose_with_b_prefs_settings(preset, expected):
    cfg = compose_config([f"experiment={preset}"])
    flat = {**expected}
    for key, value in flat.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, f"{preset}: {key} = {node!r}, expected {value!r}"
    agent = cfg["agent"]
    assert (agent["init_alpha"], agent["alpha_lr"], agent["target_update_every"], agent["init"]) == (
        0.1, 1e-4, 2, "orthogonal")
    teacher = cfg["teacher"]
    assert cfg["precision"] == "fp32"  # as B-Pref trains: auto would pick bf16 on a CPU with AVX512-BF16
    assert (cfg["pretrain"]["steps"], cfg["seed_steps"]) == (9000, 1000)
    assert [teacher[k] for k in ("beta", "gamma", "mistake", "skip", "equal")] == [-1, 1, 0, 0, 0]


def test_the_cpu_variant_changes_only_width_and_batch():
    full = compose_config(["experiment=bpref_walker_walk"])["agent"]
    cpu = compose_config(["experiment=bpref_walker_walk", "agent=sac_bpref_cpu"])["agent"]
    changed = {k for k in full if full[k] != cpu[k]}
    assert changed == {"hidden_dim", "batch_size"} and (cpu["hidden_dim"], cpu["batch_size"]) == (256, 256)


def test_orthogonal_init_gives_orthogonal_weights_and_zero_biases_in_every_member():
    torch.manual_seed(0)
    net = init_weights_(EnsembleMLP(3, 5, 16, 2, 1), "orthogonal")
    for w, b in zip(net.weights, net.biases):
        for member in w:  # [in, out]
            small = min(member.shape)
            gram = member.T @ member if member.shape[0] >= member.shape[1] else member @ member.T
            torch.testing.assert_close(gram, torch.eye(small), atol=1e-5, rtol=0)
        assert not b.any()

"""Tests for ``pbrl/envs/make.py``: validated ids, action rescaling, kwargs, simulator-state capture."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import tiny_config
from pbrl.envs import get_sim_state, make_env, set_sim_state, sim_state_dim, spec_of
from pbrl.errors import ConfigError
from pbrl.workspace import Workspace


def _run(env, steps: int, seed: int = 0) -> tuple[int, bool]:
    """Random-action steps until the episode ends; (steps taken, terminated)."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for t in range(1, steps + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            return t, terminated
    return steps, False


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_actions_in_unit_box_and_float32_observations(env_id):
    env = make_env(env_id)
    space = env.action_space
    assert space.dtype == np.float32
    np.testing.assert_array_equal(space.low, -1.0)
    np.testing.assert_array_equal(space.high, 1.0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.dtype == np.float32
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(space.sample())
    assert obs.dtype == np.float32
    env.close()


def test_unit_actions_map_onto_the_native_range():
    env = make_env("Pendulum-v1")  # native torque range [-2, 2]
    env.reset(seed=0)
    for action, torque in ((1.0, 2.0), (-1.0, -2.0), (0.5, 1.0), (0.0, 0.0)):
        env.step(np.array([action], np.float32))
        assert env.unwrapped.last_u == pytest.approx(torque)
    env.close()


def test_spec_of_describes_the_env():
    env = make_env("Hopper-v5")
    spec = spec_of(env, "Hopper-v5")
    assert (spec.obs_dim, spec.action_dim, spec.max_episode_steps) == (11, 3, 1000)
    assert spec.sim_state_dim == env.unwrapped.model.nq + env.unwrapped.model.nv == 12
    env.close()
    assert spec_of(make_env("Pendulum-v1", max_episode_steps=50), "Pendulum-v1").max_episode_steps == 50


@pytest.mark.parametrize("env_id, dim", [("Pendulum-v1", 2), ("MountainCarContinuous-v0", 2), ("Hopper-v5", 12)])
def test_sim_state_dim_is_known_before_the_first_reset(env_id, dim):
    # the Workspace sizes its buffer from spec_of right after make_env, before any reset; classic-control
    # envs only set ``state`` in reset(), so a dimension read from it there comes out 0
    env = make_env(env_id)
    assert spec_of(env, env_id).sim_state_dim == dim
    env.reset(seed=0)
    assert sim_state_dim(env) == dim


@pytest.mark.parametrize("env_name", ["pendulum", "inverted_pendulum"])
def test_a_run_stores_the_sim_state_of_every_step(tmp_path, env_name):
    # the stored sim state must be the state at ``obs``: both observations are simple functions of it
    ws = Workspace(tiny_config(f"env={env_name}", "steps=60", "seed_steps=60"), tmp_path / "run")
    ws.train()
    buf = ws.store
    assert buf.sim_state.shape == (60, 2 if env_name == "pendulum" else 4)
    state, obs = buf.sim_state, buf.obs
    if env_name == "pendulum":  # obs = [cos theta, sin theta, theta_dot], state = [theta, theta_dot]
        expected = np.stack([np.cos(state[:, 0]), np.sin(state[:, 0]), state[:, 1]], axis=1)
    else:  # obs = qpos ++ qvel
        expected = state
    np.testing.assert_allclose(obs, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("env_id, hint", [
    ("NoSuchEnv-v0", "Pendulum-v1"),  # unknown: points to working examples
    ("Pendulm-v1", "Pendulum-v1"),  # typo: suggests the close match
    ("Hoper-v5", "Hopper-v5"),
    ("CartPole-v1", "Box"),  # registered but discrete actions
])
def test_bad_ids_raise_config_error_on_env_id(env_id, hint):
    with pytest.raises(ConfigError) as info:
        make_env(env_id)
    assert info.value.field == "env.id"
    assert env_id in str(info.value) and hint in str(info.value)


def test_module_prefixed_id_of_a_missing_module_is_a_config_error():
    # "module:EnvId" makes gymnasium import the module; a missing one is bad input, not a crash
    with pytest.raises(ConfigError) as info:
        make_env("nosuchmodule:Foo-v0")
    assert info.value.field == "env.id"


def test_bad_kwargs_raise_config_error_on_env_kwargs():
    with pytest.raises(ConfigError) as info:
        make_env("Pendulum-v1", {"no_such_option": 1})
    assert info.value.field == "env.kwargs"
    assert "no_such_option" in str(info.value)


def test_kwargs_reach_the_environment():
    assert make_env("Pendulum-v1", {"g": 5.0}).unwrapped.g == 5.0
    default = make_env("Hopper-v5")
    steps, terminated = _run(default, 300)
    assert terminated and steps < 300  # random actions make the hopper fall: the check below has teeth
    never = make_env("Hopper-v5", {"terminate_when_unhealthy": False})
    assert never.unwrapped._terminate_when_unhealthy is False
    assert _run(never, 300) == (300, False)


def test_max_episode_steps_sets_the_time_limit():
    env = make_env("Pendulum-v1", max_episode_steps=7)
    assert _run(env, 20) == (7, False)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_sim_state_round_trip_reproduces_the_next_observation(env_id):
    env = make_env(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):
        env.step(env.action_space.sample())
    state = get_sim_state(env)
    assert state.dtype == np.float64 and state.shape == (sim_state_dim(env),) and len(state) > 0
    action = env.action_space.sample()
    expected, *_ = env.step(action)
    for _ in range(15):  # wander off, then come back
        env.step(env.action_space.sample())
    assert not np.allclose(get_sim_state(env), state)
    set_sim_state(env, state)
    np.testing.assert_array_equal(get_sim_state(env), state)
    obs, *_ = env.step(action)
    np.testing.assert_allclose(obs, expected, rtol=1e-6, atol=1e-6)
    env.close()


def test_sim_state_restores_into_a_fresh_env():
    # the use case: re-render a stored step in a different env instance
    env, other = make_env("Hopper-v5"), make_env("Hopper-v5")
    env.reset(seed=1)
    other.reset(seed=2)
    for _ in range(5):
        env.step(np.full(3, 0.3, np.float32))
    set_sim_state(other, get_sim_state(env))
    a = np.array([0.5, -0.2, 0.1], np.float32)
    np.testing.assert_allclose(other.step(a)[0], env.step(a)[0], rtol=1e-6, atol=1e-6)


def test_mujoco_frames_follow_the_body_and_make_a_playable_mp4(tmp_path):
    import imageio.v2 as imageio

    from pbrl.envs.render import FrameRenderer, frame_stride, write_mp4

    env = make_env("Hopper-v5")
    env.reset(seed=0)
    renderer = FrameRenderer(env)
    first = renderer.render()
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert first.std() > 10  # a scene, not a blank buffer
    for _ in range(40):
        env.step(np.ones(3, np.float32))
    moved = renderer.render()
    assert np.abs(moved.astype(int) - first.astype(int)).mean() > 1  # the body moved in view
    renderer.close()
    assert frame_stride(125) == 4 and frame_stride(None) == 1
    path = tmp_path / "clip.mp4"
    write_mp4(path, [first, moved] * 5, fps=30)
    frames = [frame for frame in imageio.get_reader(str(path))]  # list() would ask len(): inf
    assert len(frames) == 10 and frames[0].shape == (240, 320, 3)

"""Build a gymnasium environment for pbrl: validated id, Box actions rescaled to [-1, 1], optional action repeat."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from pbrl.envs import suites
from pbrl.errors import ConfigError, check_int


@dataclass(frozen=True)
class EnvSpec:
    """What the agent and the buffer need to know about an environment."""

    env_id: str
    obs_dim: int
    action_dim: int
    sim_state_dim: int  # floats needed to restore the simulator at a stored step (0: not restorable)
    max_episode_steps: int | None
    render_fps: float | None = None  # simulated frames per second (clips play in real time at this rate)


def _check_registered(env_id: str) -> None:
    if ":" in env_id:  # "module:EnvId" asks gymnasium to import a module that registers the id
        return
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            "; any registered gymnasium id with a Box action space works, e.g. Pendulum-v1, Hopper-v5")
        raise ConfigError("env.id", f"{env_id!r} is not a registered gymnasium environment{hint}")


class ActionRepeat(gym.Wrapper):
    """Each action is applied ``repeat`` times; the rewards are summed, and the repeat stops where the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat
        fps = env.metadata.get("render_fps")
        self.metadata = {**env.metadata, "render_fps": fps / repeat if fps else fps}  # one frame per agent step

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def make_env(env_id: str, kwargs: Mapping[str, Any] | None = None, max_episode_steps: int | None = None,
             render_mode: str | None = None, action_repeat: int = 1) -> gym.Env:
    """Make ``env_id`` with ``kwargs``, actions rescaled to [-1, 1] and observations as float32.

    ``max_episode_steps`` and the episode limits count agent steps, each ``action_repeat`` env steps.
    Raises ConfigError (naming ``env.id``, ``env.kwargs`` or ``env.action_repeat``) for an unknown id,
    a suite whose extra is missing, bad keyword arguments, or an action space that is not a bounded Box.
    """
    suites.register(env_id)
    _check_registered(env_id)
    check_int("env.action_repeat", action_repeat, minimum=1)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError("env.kwargs", f"got {kwargs!r}; must be a mapping of gymnasium.make keyword arguments, "
                                        "e.g. env.kwargs.terminate_when_unhealthy=false")
    kwargs = dict(kwargs or {})
    suites.check_kwargs(env_id, kwargs)
    limit = max_episode_steps or suites.default_time_limit(env_id)
    if limit is not None:
        limit *= action_repeat  # gymnasium's TimeLimit counts env steps
    try:
        make_kwargs = dict(kwargs, render_mode=render_mode)
        if suites.suite_of(env_id) == "Meta-World/":
            # its entry points require a seed (pbrl seeds every reset) and take no render_mode (FrameRenderer
            # draws from the MuJoCo data directly); gymnasium's checker warns about its observation bounds
            make_kwargs = dict(kwargs, disable_env_checker=True)
            make_kwargs.setdefault("seed", None)
        env = gym.make(env_id, max_episode_steps=limit, **make_kwargs)
    except TypeError as exc:  # an env constructor rejecting a keyword argument
        raise ConfigError("env.kwargs", f"{env_id} rejected {kwargs}: {exc}") from None
    except ImportError as exc:  # "module:EnvId" naming a module that is not installed
        raise ConfigError("env.id", f"cannot import the module of {env_id!r}: {exc}") from None
    except gym.error.Error as exc:
        raise ConfigError("env.id", f"cannot make {env_id!r}: {exc}") from None
    except AttributeError as exc:
        if suites.suite_of(env_id) is None:
            raise
        raise suites.version_mismatch(env_id, exc) from None
    env = suites.adapt(env, env_id, limit)
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        env.close()
        raise ConfigError("env.id", f"{env_id} has a {space} action space; pbrl needs a continuous Box "
                                    "action space (e.g. Pendulum-v1, Hopper-v5, HalfCheetah-v5)")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise ConfigError("env.id", f"{env_id} has an unbounded action space {space}; pbrl needs finite bounds")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise ConfigError("env.id", f"{env_id} has observation space {env.observation_space}; "
                                    "pbrl needs a flat Box observation")
    ones = np.ones(space.shape, dtype=space.dtype)  # bounds of the space's own dtype, or gymnasium warns
    env = gym.wrappers.RescaleAction(env, -ones, ones)
    obs_space = env.observation_space
    obs_space = gym.spaces.Box(obs_space.low.astype(np.float32), obs_space.high.astype(np.float32),
                               dtype=np.float32)
    env = gym.wrappers.TransformObservation(env, lambda o: np.asarray(o, dtype=np.float32), obs_space)
    return ActionRepeat(env, action_repeat) if action_repeat > 1 else env


def spec_of(env: gym.Env, env_id: str) -> EnvSpec:
    """Describe ``env`` (made by make_env) for the agent and the buffer; episode lengths in agent steps."""
    limit = env.spec.max_episode_steps if env.spec else None
    repeat = env.repeat if isinstance(env, ActionRepeat) else 1
    return EnvSpec(env_id=env_id, obs_dim=int(np.prod(env.observation_space.shape)),
                   action_dim=int(np.prod(env.action_space.shape)), sim_state_dim=sim_state_dim(env),
                   max_episode_steps=-(-limit // repeat) if limit else None, render_fps=env.metadata.get("render_fps"))


def mujoco_model_data(env: gym.Env):
    """``(MjModel, MjData)`` of a MuJoCo-based env (gymnasium's, Meta-World's, or DeepMind Control's), else None."""
    u = env.unwrapped
    if hasattr(u, "model") and hasattr(u, "data") and hasattr(u.data, "qpos"):
        return u.model, u.data
    if hasattr(getattr(u, "_env", None), "physics"):  # shimmy's DeepMind Control wrapper
        physics = suites.dmc_physics_env(env).physics
        return physics.model.ptr, physics.data.ptr
    return None


def sim_state_dim(env: gym.Env) -> int:
    """Length of the vector get_sim_state returns for this env (0 if its state cannot be captured).

    Classic-control envs have no ``state`` before their first reset, so such an env is reset here.
    """
    u = env.unwrapped
    if mujoco_model_data(env) is None and getattr(u, "state", None) is None:
        env.reset()
    return len(get_sim_state(env))


def get_sim_state(env: gym.Env) -> np.ndarray:
    """The simulator state that reproduces the current frame, else ``state`` (classic control).

    MuJoCo: qpos ++ qvel, then act (actuator activations) and the mocap bodies' positions and
    orientations where the model has them (Meta-World's arm follows a mocap body), then Meta-World's
    task vector (the goal and object placement it writes into the model at reset).
    """
    handles = mujoco_model_data(env)
    if handles is not None:
        _, d = handles
        task = suites.task_state(env)
        parts = [d.qpos, d.qvel, d.act, d.mocap_pos.ravel(), d.mocap_quat.ravel()]
        if task is not None:
            parts.append(task)
        return np.concatenate(parts).astype(np.float64)
    u = env.unwrapped
    state = getattr(u, "state", None)
    if state is not None:
        try:
            return np.asarray(state, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass
    return np.zeros(0, dtype=np.float64)


def set_sim_state(env: gym.Env, state: np.ndarray) -> None:
    """Restore a state captured by get_sim_state (for re-rendering stored steps).

    The kinematics are recomputed for the restored state (``mj_forward``); a frame drawn right after
    ``env.step`` shows those of the step's start, as MuJoCo leaves them, one step behind.
    """
    u = env.unwrapped
    state = np.asarray(state, dtype=np.float64)
    handles = mujoco_model_data(env)
    if handles is not None:
        import mujoco

        m, d = handles
        sizes = [m.nq, m.nv, m.na, 3 * m.nmocap, 4 * m.nmocap]
        qpos, qvel, act, mocap_pos, mocap_quat, task = np.split(state, np.cumsum(sizes))
        if task.size:
            suites.set_task_state(env, task)
        d.qpos[:], d.qvel[:] = qpos, qvel
        if m.na:
            d.act[:] = act
        if m.nmocap:
            d.mocap_pos[:], d.mocap_quat[:] = mocap_pos.reshape(-1, 3), mocap_quat.reshape(-1, 4)
        mujoco.mj_forward(m, d)
    elif getattr(u, "state", None) is not None:
        u.state = state.reshape(np.shape(u.state)).copy()
    else:
        raise ValueError(f"{u} has no restorable simulator state")

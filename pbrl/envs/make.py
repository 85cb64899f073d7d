"""Build a gymnasium environment for pbrl: validated id, Box actions rescaled to [-1, 1]."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from pbrl.errors import ConfigError


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


def make_env(env_id: str, kwargs: Mapping[str, Any] | None = None, max_episode_steps: int | None = None,
             render_mode: str | None = None) -> gym.Env:
    """Make ``env_id`` with ``kwargs``, actions rescaled to [-1, 1] and observations as float32.

    Raises ConfigError (naming ``env.id`` or ``env.kwargs``) for an unknown id, bad keyword
    arguments, or an action space that is not a bounded Box.
    """
    _check_registered(env_id)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError("env.kwargs", f"got {kwargs!r}; must be a mapping of gymnasium.make keyword arguments, "
                                        "e.g. env.kwargs.terminate_when_unhealthy=false")
    kwargs = dict(kwargs or {})
    try:
        env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    except TypeError as exc:  # an env constructor rejecting a keyword argument
        raise ConfigError("env.kwargs", f"{env_id} rejected {kwargs}: {exc}") from None
    except ImportError as exc:  # "module:EnvId" naming a module that is not installed
        raise ConfigError("env.id", f"cannot import the module of {env_id!r}: {exc}") from None
    except gym.error.Error as exc:
        raise ConfigError("env.id", f"cannot make {env_id!r}: {exc}") from None
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
    ones = np.ones(space.shape, dtype=np.float32)  # float32 bounds: float64 ones make gymnasium warn
    env = gym.wrappers.RescaleAction(env, -ones, ones)
    obs_space = env.observation_space
    obs_space = gym.spaces.Box(obs_space.low.astype(np.float32), obs_space.high.astype(np.float32),
                               dtype=np.float32)
    env = gym.wrappers.TransformObservation(env, lambda o: np.asarray(o, dtype=np.float32), obs_space)
    return env


def spec_of(env: gym.Env, env_id: str) -> EnvSpec:
    """Describe ``env`` (made by make_env) for the agent and the buffer."""
    return EnvSpec(env_id=env_id, obs_dim=int(np.prod(env.observation_space.shape)),
                   action_dim=int(np.prod(env.action_space.shape)), sim_state_dim=sim_state_dim(env),
                   max_episode_steps=env.spec.max_episode_steps if env.spec else None,
                   render_fps=env.metadata.get("render_fps"))


def _is_mujoco(unwrapped) -> bool:
    return hasattr(unwrapped, "data") and hasattr(unwrapped.data, "qpos") and hasattr(unwrapped, "set_state")


def sim_state_dim(env: gym.Env) -> int:
    """Length of the vector get_sim_state returns for this env (0 if its state cannot be captured).

    Classic-control envs have no ``state`` before their first reset, so such an env is reset here.
    """
    u = env.unwrapped
    if not _is_mujoco(u) and getattr(u, "state", None) is None:
        env.reset()
    return len(get_sim_state(env))


def get_sim_state(env: gym.Env) -> np.ndarray:
    """The simulator state that reproduces the current frame: MuJoCo qpos ++ qvel, else ``state``."""
    u = env.unwrapped
    if _is_mujoco(u):
        return np.concatenate([u.data.qpos, u.data.qvel]).astype(np.float64)
    state = getattr(u, "state", None)
    if state is not None:
        try:
            return np.asarray(state, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass
    return np.zeros(0, dtype=np.float64)


def set_sim_state(env: gym.Env, state: np.ndarray) -> None:
    """Restore a state captured by get_sim_state (for re-rendering stored steps)."""
    u = env.unwrapped
    state = np.asarray(state, dtype=np.float64)
    if _is_mujoco(u):
        nq = u.model.nq
        u.set_state(state[:nq], state[nq:])
    elif getattr(u, "state", None) is not None:
        u.state = state.reshape(np.shape(u.state)).copy()
    else:
        raise ValueError(f"{u} has no restorable simulator state")

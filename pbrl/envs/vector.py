"""The training envs: N copies of the task stepped together (gymnasium's sync or async vector env).

Episodes are reset by the run, not automatically: ``begin`` resets the envs whose episode ended
(each with a seed drawn from the run's RNG, so a run is reproducible from its seed) and ``step``
returns the true final observation of an ending episode, never the next episode's first one. Each
env also reports its simulator state (MuJoCo qpos ++ qvel) so that any stored step can be rendered.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from pbrl.envs.make import get_sim_state, make_env

MODES = ("sync", "async")


class SimStateInfo(gym.Wrapper):
    """Puts the simulator state at the returned observation into ``info["sim_state"]``."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "sim_state": get_sim_state(self.env)}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "sim_state": get_sim_state(self.env)}


def _maker(env_id: str, kwargs: Mapping[str, Any] | None, max_episode_steps: int | None,
           action_repeat: int) -> Callable[[], gym.Env]:
    return lambda: SimStateInfo(make_env(env_id, kwargs, max_episode_steps, action_repeat=action_repeat))


class TrainEnvs:
    """``n`` training envs; see the module docstring."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any] | None, max_episode_steps: int | None, n: int,
                 mode: str, rng: np.random.Generator, sim_state_dim: int, action_repeat: int = 1):
        fns = [_maker(env_id, kwargs, max_episode_steps, action_repeat) for _ in range(n)]
        vector = SyncVectorEnv if mode == "sync" else AsyncVectorEnv
        self.envs = vector(fns, autoreset_mode=AutoresetMode.DISABLED)
        self.n, self.rng = n, rng
        self.obs: np.ndarray | None = None  # [n, obs_dim] the observation each env's next action answers
        self.sim_state = np.zeros((n, sim_state_dim))  # [n, d] the simulator state at ``obs``
        self.ended = np.ones(n, bool)  # envs whose episode is over (all, before the first reset)

    def begin(self) -> np.ndarray:
        """Reset the envs whose episode ended; returns the mask of envs that start a new episode now."""
        started = self.ended.copy()
        if started.any():
            seeds = [int(self.rng.integers(2**31)) if s else None for s in started]
            obs, info = self.envs.reset(seed=seeds, options={"reset_mask": started.copy()})
            self.obs = np.asarray(obs, np.float32)
            self._take_sim_state(info, started)
            self.ended[:] = False
        return started

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(next_obs, reward, terminated, truncated)``, each ``[n, ...]``; ``next_obs`` is final where one ended."""
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        next_obs = np.asarray(next_obs, np.float32)
        self._take_sim_state(info, np.ones(self.n, bool))
        self.obs = next_obs
        self.ended = terminated | truncated
        return next_obs, np.asarray(reward, np.float64), terminated, truncated

    def restart(self) -> None:
        """Every env starts a fresh episode at the next ``begin`` (a resumed run)."""
        self.ended[:] = True

    def _take_sim_state(self, info: dict, mask: np.ndarray) -> None:
        if self.sim_state.shape[1] and "sim_state" in info:
            self.sim_state[mask] = np.asarray(info["sim_state"])[mask]

    def close(self) -> None:
        self.envs.close()

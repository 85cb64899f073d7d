"""Where an agent's reward comes from: the env, the state-entropy bonus, or the learned model.

A ``RewardSource`` is what the run hands to ``Agent.learn``: the agent asks it for rewards of
stored ``(obs, action)`` pairs and never needs to know which source it is. ``version`` changes
whenever the rewards it would give for the same pairs change (the model was retrained), so that an
agent can tell stored rewards that are out of date.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pbrl.intrinsic.state_entropy import StateEntropy


class RewardSource:
    """Rewards of ``(obs, action)`` batches; see the module docstring."""

    name: str = "?"
    from_env: bool = False  # the env's own reward, carried by each transition (nothing to recompute)
    per_batch: bool = False  # changes with every call (the k-NN bonus): compute it per sampled batch, never store it
    version: int = 0
    batch_size: int = 65536  # rows per call when many stored rewards are rewritten at once

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Per-step rewards ``[B]`` of ``obs [B, obs_dim]``, ``action [B, action_dim]``."""
        raise NotImplementedError(f"the {self.name} reward is not a function of (obs, action)")

    def step_reward(self, obs: np.ndarray, action: np.ndarray, env_reward: np.ndarray) -> np.ndarray:
        """The reward to store with a new step of ``N`` envs (``[N]`` float32)."""
        raise NotImplementedError


class EnvReward(RewardSource):
    """The environment's reward (plain RL, ``teacher=none``)."""

    name, from_env = "env", True

    def step_reward(self, obs: np.ndarray, action: np.ndarray, env_reward: np.ndarray) -> np.ndarray:
        return np.asarray(env_reward, np.float32)


class StateEntropyReward(RewardSource):
    """PEBBLE's exploration reward: the normalised k-NN distance of each state to the stored ones.

    ``pool`` returns the states to measure against (the episode store's observations). Stored
    steps get 0: the bonus depends on the pool, so an agent computes it on every batch it trains on.
    """

    name, per_batch = "state_entropy", True

    def __init__(self, bonus: StateEntropy, pool: Callable[[], torch.Tensor]):
        self.bonus, self.pool = bonus, pool

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.bonus(obs, self.pool())

    def step_reward(self, obs: np.ndarray, action: np.ndarray, env_reward: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.float32)


class LearnedReward(RewardSource):
    """The reward model's ensemble mean (times ``reward_model.scale``); 0 until it has been trained.

    ``trainings`` returns how many times the model has been trained: the source's version.
    """

    name = "learned"

    def __init__(self, model, trainings: Callable[[], int]):
        self.model, self._trainings = model, trainings

    @property
    def version(self) -> int:
        return self._trainings()

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if not self.version:
            return torch.zeros(obs.shape[0], device=obs.device)
        return self.model.reward(obs, action)

    def step_reward(self, obs: np.ndarray, action: np.ndarray, env_reward: np.ndarray) -> np.ndarray:
        if not self.version:
            return np.zeros(len(obs), np.float32)
        return self.model.reward(torch.as_tensor(obs), torch.as_tensor(action)).float().cpu().numpy()

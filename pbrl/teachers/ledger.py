"""The true reward, kept where only the teacher can read it.

In preference mode the training environment is wrapped by ``RewardLedger.wrap``: every step's
reward is written to the ledger, and the agent's side receives NaN instead. Nothing the agent or
the reward model learns from can then contain the true reward by construction, and an accidental
use would turn the critic's loss into NaN at once rather than leak silently. The ledger mirrors
the replay buffer slot for slot (one training step = one write), so a segment's buffer indices
also index its true rewards.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class RewardLedger:
    """True per-step rewards by replay-buffer slot, plus returns of finished training episodes."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.reward = np.zeros(capacity, np.float64)
        self.pos = 0
        self.size = 0
        self.episode_returns: list[float] = []  # finished training episodes, oldest first
        self.episode_lengths: list[int] = []
        self._return, self._length = 0.0, 0

    def record(self, reward: float, episode_over: bool) -> None:
        """Store one training step's reward at the next slot."""
        self.reward[self.pos] = reward
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self._return += reward
        self._length += 1
        if episode_over:
            self.episode_returns.append(self._return)
            self.episode_lengths.append(self._length)
            self._return, self._length = 0.0, 0

    def drop_partial_episode(self) -> None:
        """Forget the running episode (a resumed run starts a fresh one)."""
        self._return, self._length = 0.0, 0

    def mean_step_reward(self, episodes: int = 10) -> float | None:
        """Mean true reward per step over the last ``episodes`` finished episodes (None before the first)."""
        if not self.episode_returns:
            return None
        return float(np.sum(self.episode_returns[-episodes:]) / np.sum(self.episode_lengths[-episodes:]))

    def wrap(self, env: gym.Env) -> gym.Env:
        """``env`` with its reward diverted into this ledger; the caller sees NaN rewards."""
        return _HiddenReward(env, self)

    def state_dict(self) -> dict:
        return {"reward": self.reward[:self.size].copy(), "pos": self.pos, "size": self.size,
                "capacity": self.capacity, "episode_returns": list(self.episode_returns),
                "episode_lengths": list(self.episode_lengths)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ledger; its slots are reordered exactly like the replay buffer's (see ReplayBuffer)."""
        from pbrl.buffers.replay import restore_order

        order, pos = restore_order(state["size"], state["pos"], state["capacity"], self.capacity)
        self.reward[:state["size"]] = np.asarray(state["reward"])[order]
        self.pos, self.size = pos, state["size"]
        self.episode_returns = list(state["episode_returns"])
        self.episode_lengths = list(state["episode_lengths"])
        self.drop_partial_episode()


class _HiddenReward(gym.Wrapper):
    def __init__(self, env: gym.Env, ledger: RewardLedger):
        super().__init__(env)
        self.ledger = ledger

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.ledger.record(float(reward), terminated or truncated)
        return obs, float("nan"), terminated, truncated, info
